package verify

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hardway-dev/hardway/spec"
)

// checkGateway: the operator's way in. The gateway node's sshd answers on
// the spec's bastion port (and not on 22) with the host key the node
// generated at its first boot; with Options.SSHIdentity (the private half
// of a key in spec.ssh.authorizedKeys) root logs in, `kubectl get nodes`
// there (the gateway's admin kubeconfig, through the API endpoint) lists
// every worker, and a jump through the bastion reaches a worker's sshd, as
// `ssh -J` does.
func checkGateway(ctx context.Context, v *run) (string, error) {
	gw := v.gatewayGuest()
	if gw == nil {
		return "not applicable: the spec has no gateway node", nil
	}
	n, _ := v.c.Node(gw.info().name)
	bastion := netip.AddrPortFrom(n.IP(), uint16(v.c.Spec.SSH.BastionPort))
	if bastion.Port() != 22 {
		if err := refused(ctx, v.net.Hub, netip.AddrPortFrom(n.IP(), 22)); err != nil {
			return "", fmt.Errorf("gateway %s: %w", n.Name, err)
		}
	}
	hostKey, err := guestHostKey(ctx, gw)
	if err != nil {
		return "", err
	}
	if v.o.SSHIdentity == "" {
		// Without a key the spec authorizes, only the handshake can be
		// checked: the server proves its host key before any login.
		err := poll(ctx, 2*time.Second, func() error {
			conn, err := v.net.Hub.DialContext(ctx, "tcp", bastion.String())
			if err != nil {
				return err
			}
			c, err := sshClient(conn, bastion.String(), pinned(hostKey))
			if err == nil {
				c.Close()
				return permanentError{fmt.Errorf("ssh root@%s: logged in with no key", bastion)}
			}
			if strings.Contains(err.Error(), "unable to authenticate") {
				return nil
			}
			return err
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("sshd on %s with %s's host key %s; no login checked: no SSH identity given", bastion, n.Name, ssh.FingerprintSHA256(hostKey)), nil
	}
	signer, err := identity(v.o.SSHIdentity)
	if err != nil {
		return "", err
	}
	auth := ssh.PublicKeys(signer)
	var client *ssh.Client
	err = poll(ctx, 2*time.Second, func() error {
		conn, err := v.net.Hub.DialContext(ctx, "tcp", bastion.String())
		if err != nil {
			return err
		}
		client, err = sshClient(conn, bastion.String(), pinned(hostKey, auth))
		return err
	})
	if err != nil {
		return "", err
	}
	defer client.Close()
	var workers []string
	for _, w := range v.c.NodesWith(spec.RoleWorker) {
		workers = append(workers, "node/"+w.Name)
	}
	var out string
	err = poll(ctx, 2*time.Second, func() error {
		var err error
		if out, err = sshRun(client, "kubectl get nodes -o name"); err != nil {
			return err
		}
		for _, w := range workers {
			if !slices.Contains(strings.Fields(out), w) {
				return fmt.Errorf("kubectl get nodes on %s: %q lacks %s", n.Name, strings.TrimSpace(out), w)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("root@%s by key (host key %s); kubectl get nodes there lists %s", bastion, ssh.FingerprintSHA256(hostKey), strings.Join(workers, ", "))
	if ws := v.workerGuests(); len(ws) > 0 {
		hop, err := v.jump(ctx, client, ws[0], auth)
		if err != nil {
			return "", err
		}
		detail += "; " + hop
	}
	return detail, nil
}

// jump logs in to a worker's sshd on port 22 through the bastion's TCP
// forwarding (ssh -J) and runs hostname there.
func (v *run) jump(ctx context.Context, bastion *ssh.Client, g guest, auth ssh.AuthMethod) (string, error) {
	n, _ := v.c.Node(g.info().name)
	key, err := guestHostKey(ctx, g)
	if err != nil {
		return "", err
	}
	addr := netip.AddrPortFrom(n.IP(), 22).String()
	conn, err := bastion.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("through the bastion to %s: %w", addr, err)
	}
	client, err := sshClient(conn, addr, pinned(key, auth))
	if err != nil {
		return "", fmt.Errorf("ssh -J: %w", err)
	}
	defer client.Close()
	out, err := sshRun(client, "hostname")
	if err != nil {
		return "", fmt.Errorf("ssh -J to root@%s: %w", addr, err)
	}
	if host := strings.TrimSpace(out); host != n.Name && !strings.HasPrefix(host, n.Name+".") {
		return "", fmt.Errorf("ssh -J to %s: hostname %q, want %s", addr, host, n.Name)
	}
	return fmt.Sprintf("ssh -J to root@%s answers as %s", addr, strings.TrimSpace(out)), nil
}

// pinned is root's client configuration for a server whose host key is
// key, the node's ed25519 key: it asks for that type (sshd offers its
// ECDSA and RSA keys too, which a pin of the ed25519 key would refuse).
func pinned(key ssh.PublicKey, auth ...ssh.AuthMethod) *ssh.ClientConfig {
	return &ssh.ClientConfig{User: "root", Auth: auth, HostKeyCallback: ssh.FixedHostKey(key),
		HostKeyAlgorithms: []string{key.Type()}, Timeout: 15 * time.Second}
}

// sshClient runs the SSH handshake and login over conn to addr, closing
// conn when they fail.
func sshClient(conn net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh root@%s: %w", addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// sshRun runs a command in a new session and returns its combined output.
func sshRun(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", cmd, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// guestHostKey reads the ed25519 host key a node's sshd generated at its
// first boot, from the node itself (as `pct exec` or `qm guest exec` would):
// the key the SSH rows pin.
func guestHostKey(ctx context.Context, g guest) (ssh.PublicKey, error) {
	var key ssh.PublicKey
	err := poll(ctx, 2*time.Second, func() error {
		out, err := g.run(ctx, "cat", "/etc/ssh/ssh_host_ed25519_key.pub")
		if err != nil {
			return err
		}
		key, _, _, _, err = ssh.ParseAuthorizedKey([]byte(out))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s's SSH host key: %w", g.info().name, err)
	}
	return key, nil
}

// identity reads an OpenSSH private key (unencrypted: a test's throwaway
// key or an agent-less pipeline's).
func identity(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("SSH identity %s: %w", path, err)
	}
	return s, nil
}

// ThrowawayKey writes a new ed25519 key pair into dir (id_ed25519, 0600,
// and id_ed25519.pub) for one run: the spec copy authorizes the public
// half, verify logs in with the private one (Options.SSHIdentity). It
// returns the authorized_keys line and the private key's path.
func ThrowawayKey(dir string) (authorized, identity string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "hardway verify")
	if err != nil {
		return "", "", err
	}
	authorized = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " hardway-verify"
	identity = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(identity, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", "", err
	}
	return authorized, identity, os.WriteFile(identity+".pub", []byte(authorized+"\n"), 0o644)
}

// refused checks that nothing listens at addr: the connection is refused.
func refused(ctx context.Context, ns *NS, addr netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := ns.DialContext(ctx, "tcp", addr.String())
	if err == nil {
		conn.Close()
		return fmt.Errorf("%s accepts connections, want refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: %w, want connection refused", addr, err)
	}
	return nil
}
