package verify

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// The QEMU guest agent (qemu-ga in the VM, `agent: enabled=1` in a node's
// proxmox.conf): what `qm guest exec` and `qm shutdown` use on Proxmox, and
// here the way into a booted VM: a unit's journal, a clean power-off. Its
// protocol is QMP's JSON, one command and one answer at a time, over the
// virtio-serial port org.qemu.guest_agent.0, whose host end is a socket.

// qga is a guest agent's socket on the host.
type qga string

// call sends one command and decodes its "return" into out (nil: ignored).
// A guest-sync with a fresh id comes first: an earlier client may have left
// an answer in the channel, and the agent may not be up yet (then the sync
// times out and so does the call).
func (q qga) call(ctx context.Context, cmd string, args, out any) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", string(q))
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	enc, r := json.NewEncoder(conn), bufio.NewReader(conn)
	id := time.Now().UnixNano() & (1<<31 - 1)
	if err := enc.Encode(map[string]any{"execute": "guest-sync", "arguments": map[string]any{"id": id}}); err != nil {
		return err
	}
	for {
		var ans struct {
			Return json.RawMessage
		}
		if err := readAnswer(r, &ans); err != nil {
			return fmt.Errorf("guest agent: guest-sync: %w", err)
		}
		var got int64
		if json.Unmarshal(ans.Return, &got) == nil && got == id {
			break
		}
	}
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	if err := enc.Encode(req); err != nil {
		return err
	}
	if cmd == "guest-shutdown" {
		return nil // it answers nothing on success
	}
	var ans struct {
		Return json.RawMessage
		Error  *struct{ Class, Desc string }
	}
	if err := readAnswer(r, &ans); err != nil {
		return fmt.Errorf("guest agent: %s: %w", cmd, err)
	}
	if ans.Error != nil {
		return fmt.Errorf("guest agent: %s: %s: %s", cmd, ans.Error.Class, ans.Error.Desc)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(ans.Return, out)
}

// readAnswer reads one JSON line of the agent.
func readAnswer(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// exec runs argv in the guest, waits for it to end and returns its output
// (stdout, then stderr) and exit status: guest-exec and guest-exec-status,
// as `qm guest exec` does.
func (q qga) exec(ctx context.Context, argv ...string) (string, int, error) {
	var started struct{ PID int }
	if err := q.call(ctx, "guest-exec", map[string]any{"path": argv[0], "arg": argv[1:], "capture-output": true}, &started); err != nil {
		return "", 0, err
	}
	for {
		var st struct {
			Exited   bool
			ExitCode int    `json:"exitcode"`
			Out      string `json:"out-data"`
			Err      string `json:"err-data"`
		}
		if err := q.call(ctx, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			return "", 0, err
		}
		if st.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.Out)
			errOut, _ := base64.StdEncoding.DecodeString(st.Err)
			return string(out) + string(errOut), st.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return "", 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
