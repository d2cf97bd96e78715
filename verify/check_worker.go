package verify

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hardway-dev/hardway/spec"
)

// The rows of booted workers: what a cluster with workers must do, each
// through the real components (kubelet, containerd, runc, the CNI plugins,
// kube-proxy, CoreDNS, kubectl).

// SmokeImage is the smoke workload the worker rows run (tools/images builds
// its archive; the worker imports it at first boot, as spec.images lists it).
const SmokeImage = "hardway.dev/smoke:v0.2.0"

// workerChecks follow the control plane's rows when workers boot.
var workerChecks = []check{
	{"workers register and go Ready", checkReady},
	{"smoke pods: pod CIDR IPs, HTTP over the node network", checkPods},
	{"a Deployment's two replicas on two workers", checkSpread},
	{"kubectl logs and exec (apiserver → kubelet)", checkLogsExec},
	{"kubectl port-forward to a pod", checkPortForward},
	{"ClusterIP Service from a pod on another worker", checkClusterIP},
	{"CoreDNS resolves Service names from a pod", checkDNS},
	{"NodePort Service on every worker, from the gateway", checkNodePort},
	{"pod to pod across workers", checkPodToPod},
}

// workerRowTimeout bounds one worker row; the first includes the boot.
const workerRowTimeout = 240 * time.Second

// With a VM among the workers: under software emulation (no usable KVM on
// a build machine) its boot to Ready took 1 min 45 s on a lightly loaded
// 2-core machine, and may take several times that under load; every pod
// start is slower too.
const (
	vmBootTimeout = 20 * time.Minute
	vmRowTimeout  = 8 * time.Minute
)

// smokeNamespace holds the smoke pods and their Service.
const smokeNamespace = "default"

// smokePod is the name of the smoke pod on a worker.
func smokePod(node string) string { return "smoke-" + node }

// checkReady: every booted worker's Node is Ready; the detail has the time
// from its start (lxc-start or qemu) to Ready and what the kubelet reports of itself.
func checkReady(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	var details []string
	for _, g := range v.workerGuests() {
		c := g.info()
		node := &corev1.Node{}
		err := poll(ctx, 2*time.Second, func() error {
			if err := cs.get(ctx, "/api/v1/nodes/"+c.name, node); err != nil {
				return unlessRetryable(err)
			}
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("node %s is not Ready: %s", c.name, conditions(node))
		})
		if err != nil {
			return "", v.withJournals(ctx, err)
		}
		info := node.Status.NodeInfo
		details = append(details, fmt.Sprintf("%s Ready %s after %s started (kubelet %s, %s)", c.name, round(time.Since(c.started)), c.via, info.KubeletVersion, info.ContainerRuntimeVersion))
	}
	return strings.Join(details, "; "), nil
}

// conditions lists a node's conditions, for the error of a node not Ready.
func conditions(n *corev1.Node) string {
	var out []string
	for _, c := range n.Status.Conditions {
		out = append(out, fmt.Sprintf("%s=%s (%s)", c.Type, c.Status, c.Message))
	}
	if len(out) == 0 {
		return "no conditions yet"
	}
	return strings.Join(out, ", ")
}

// checkPods: a smoke pod on each worker runs, has an address from that
// worker's pod CIDR, and answers HTTP from the first controller's namespace,
// whose packets take the node network's routes (the gateway, then the
// host's route to the worker) to the pod.
func checkPods(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	cidrs := v.c.PodCIDRs()
	from, fromName := v.clientNS()
	var details []string
	for _, g := range v.workerGuests() {
		c := g.info()
		pod, err := runSmokePod(ctx, cs, c.name)
		if err != nil {
			return "", v.withJournals(ctx, err)
		}
		ip, err := netip.ParseAddr(pod.Status.PodIP)
		if err != nil || !cidrs[c.name].Contains(ip) {
			return "", fmt.Errorf("pod %s on %s has IP %q, not in the worker's pod CIDR %s", pod.Name, c.name, pod.Status.PodIP, cidrs[c.name])
		}
		var id struct{ Pod, Node, IP string }
		body, err := httpGet(ctx, from, "http://"+net.JoinHostPort(ip.String(), "8080")+"/")
		if err == nil {
			err = json.Unmarshal([]byte(body), &id)
		}
		if err != nil {
			return "", fmt.Errorf("HTTP to pod %s at %s from %s: %w", pod.Name, ip, fromName, err)
		}
		if id.Pod != pod.Name || id.Node != c.name || id.IP != ip.String() {
			return "", fmt.Errorf("pod %s at %s answered %s, want its own pod, node and IP", pod.Name, ip, body)
		}
		details = append(details, fmt.Sprintf("%s on %s at %s (pod CIDR %s) answers %s", pod.Name, c.name, ip, cidrs[c.name], fromName))
	}
	return strings.Join(details, "; "), nil
}

// runSmokePod creates the smoke pod of a worker (once) and waits until it
// is Running and ready.
func runSmokePod(ctx context.Context, cs *kube, node string) (*corev1.Pod, error) {
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: smokePod(node), Namespace: smokeNamespace, Labels: map[string]string{"app": "smoke", nodeLabel: node}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{smokeContainer()}},
	}
	// The ServiceAccount admission plugin refuses a pod until the
	// controller manager has created its namespace's default
	// ServiceAccount, which on a slow first start (software emulation)
	// comes minutes after the API is up; wait for it, as Kubernetes' own
	// e2e framework does before its first pod. It never coming fails here.
	sa := &corev1.ServiceAccount{}
	if err := poll(ctx, 2*time.Second, func() error {
		return unlessRetryable(cs.get(ctx, "/api/v1/namespaces/"+smokeNamespace+"/serviceaccounts/default", sa))
	}); err != nil {
		return nil, fmt.Errorf("the default ServiceAccount of namespace %s, which a pod needs (kube-controller-manager creates it): %w", smokeNamespace, err)
	}
	path := "/api/v1/namespaces/" + smokeNamespace + "/pods"
	pod := &corev1.Pod{}
	if err := cs.create(ctx, path, want, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create pod %s: %w", want.Name, err)
	}
	err := poll(ctx, 2*time.Second, func() error {
		if err := cs.get(ctx, path+"/"+want.Name, pod); err != nil {
			return unlessRetryable(err)
		}
		return podReady(pod)
	})
	return pod, err
}

// nodeLabel labels each smoke pod with its worker, for Services that
// select the pod of one worker.
const nodeLabel = "hardway.dev/node"

// smokeContainer runs the smoke server on port 8080 ("http"); it answers
// with its pod's name, node and IP, which it learns from the downward API.
func smokeContainer() corev1.Container {
	env := func(name, field string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: field}}}
	}
	return corev1.Container{
		Name: "smoke", Image: SmokeImage,
		// The archive is imported at first boot: never pull.
		ImagePullPolicy: corev1.PullNever,
		Env:             []corev1.EnvVar{env("POD_NAME", "metadata.name"), env("POD_NAMESPACE", "metadata.namespace"), env("NODE_NAME", "spec.nodeName"), env("POD_IP", "status.podIP")},
		Ports:           []corev1.ContainerPort{{ContainerPort: 8080, Name: "http"}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 2},
	}
}

// podReady says why a pod is not running and ready, or nil.
func podReady(p *corev1.Pod) error {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return permanentError{fmt.Errorf("pod %s is %s: %s", p.Name, p.Status.Phase, p.Status.Message)}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	var why []string
	for _, s := range p.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil {
			why = append(why, fmt.Sprintf("%s waiting: %s %s", s.Name, w.Reason, w.Message))
		}
		if t := s.LastTerminationState.Terminated; t != nil {
			why = append(why, fmt.Sprintf("%s last exited %d: %s", s.Name, t.ExitCode, t.Reason))
		}
	}
	return fmt.Errorf("pod %s is %s, not ready %v", p.Name, p.Status.Phase, why)
}

// httpGet GETs url from inside a namespace until it answers 200, and
// returns the body.
func httpGet(ctx context.Context, ns *NS, url string) (string, error) {
	c := httpClient(ns, nil)
	var body string
	err := poll(ctx, 2*time.Second, func() error {
		code, b, err := get(ctx, c, url)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%s: HTTP %d", url, code)
		}
		body = b
		return err
	})
	return body, err
}

// kubectl runs the pinned kubectl from clientNS: in the first controller's
// namespace with the admin kubeconfig (whose server is the controller's own
// apiserver), or, with every node booted, from the hub with admin-api (the
// same user through the API endpoint). It returns the output, or an error
// with it.
func (v *run) kubectl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd, err := v.kubectlCmd(ctx, args...)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// kubectlCmd is the command of v.kubectl, to run as the caller needs.
func (v *run) kubectlCmd(ctx context.Context, args ...string) (*exec.Cmd, error) {
	argv, err := v.kubectlArgv(args...)
	if err != nil {
		return nil, err
	}
	ns, _ := v.clientNS()
	return nsCommand(ctx, ns, argv[0], argv[1:]...), nil
}

// kubectlArgv is the pinned kubectl with the kubeconfig that works from
// clientNS, and args.
func (v *run) kubectlArgv(args ...string) ([]string, error) {
	bin, err := v.binary("kubectl")
	if err != nil {
		return nil, err
	}
	kc := filepath.Join(v.o.Dir, "kubeconfigs", "admin.kubeconfig")
	if v.o.Boot {
		kc = filepath.Join(v.o.Dir, "kubeconfigs", "admin-api.kubeconfig")
	}
	return append([]string{bin, "--kubeconfig", kc}, args...), nil
}

// pollKubectl runs kubectl until it succeeds and check accepts its output.
func (v *run) pollKubectl(ctx context.Context, check func(string) error, args ...string) (string, error) {
	return pollOutput(ctx, check, func() (string, error) { return v.kubectl(ctx, args...) })
}

// pollOutput runs cmd until it succeeds and check accepts its output.
func pollOutput(ctx context.Context, check func(string) error, cmd func() (string, error)) (string, error) {
	var out string
	err := poll(ctx, 2*time.Second, func() error {
		var err error
		if out, err = cmd(); err != nil {
			return err
		}
		return check(out)
	})
	return out, err
}

// contains is a check that output holds s.
func contains(s string) func(string) error {
	return func(out string) error {
		if !strings.Contains(out, s) {
			return fmt.Errorf("output %q does not contain %q", strings.TrimSpace(out), s)
		}
		return nil
	}
}

// checkLogsExec: `kubectl logs` shows the smoke pod's request log and
// `kubectl exec` runs a command in it, on every worker: the API server reaches the kubelet
// with its client certificate and the kubelet authorizes the call.
func checkLogsExec(ctx context.Context, v *run) (string, error) {
	var pods []string
	for _, g := range v.workerGuests() {
		pod := smokePod(g.info().name)
		if _, err := v.pollKubectl(ctx, contains("GET / from"), "logs", "-n", smokeNamespace, pod); err != nil {
			return "", err
		}
		if _, err := v.pollKubectl(ctx, contains("ok"), "exec", "-n", smokeNamespace, pod, "--", "/smoke", "get", "http://127.0.0.1:8080/healthz"); err != nil {
			return "", err
		}
		pods = append(pods, pod)
	}
	return fmt.Sprintf("logs of %s show the smoke pods row's request; exec of /smoke get in each answers ok", strings.Join(pods, ", ")), nil
}

// ensureService creates a Service (once) in the smoke namespace on port 80
// to the smoke pods' "http" port, and returns it as the API server has it.
func ensureService(ctx context.Context, cs *kube, name string, typ corev1.ServiceType, selector map[string]string) (*corev1.Service, error) {
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: smokeNamespace},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: selector,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	svc := &corev1.Service{}
	path := "/api/v1/namespaces/" + smokeNamespace + "/services"
	err := cs.create(ctx, path, want, svc)
	if apierrors.IsAlreadyExists(err) {
		err = cs.get(ctx, path+"/"+name, svc)
	}
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", name, err)
	}
	return svc, nil
}

// smokeService is the ClusterIP Service of every smoke pod.
func smokeService(ctx context.Context, cs *kube) (*corev1.Service, error) {
	return ensureService(ctx, cs, "smoke", corev1.ServiceTypeClusterIP, map[string]string{"app": "smoke"})
}

// checkClusterIP: a Service selecting only the first worker's smoke pod
// answers on its ClusterIP from the smoke pod of the last worker:
// kube-proxy's rules on one worker, the route to the other's pod CIDR.
// With one worker, the pod reaches itself through the Service. (Its name
// is checkDNS's.)
func checkClusterIP(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	ws := v.workerGuests()
	to, from := ws[0].info().name, ws[len(ws)-1].info().name
	svc, err := ensureService(ctx, cs, "smoke-"+to, corev1.ServiceTypeClusterIP, map[string]string{"app": "smoke", nodeLabel: to})
	if err != nil {
		return "", err
	}
	want := fmt.Sprintf(`"node":%q`, to)
	url := "http://" + svc.Spec.ClusterIP + "/"
	if _, err := v.pollKubectl(ctx, contains(want), "exec", "-n", smokeNamespace, smokePod(from), "--", "/smoke", "get", url); err != nil {
		return "", v.withJournals(ctx, err)
	}
	return fmt.Sprintf("%s (pod on %s) answers %s at %s", svc.Name, to, smokePod(from), url), nil
}

// checkDNS: CoreDNS (the bootstrap manifests' Deployment) runs on the
// workers and a pod resolves, through the kubelet's resolv.conf, the
// clusterDNS Service and kube-proxy, kubernetes.default.svc.<clusterDomain>
// to the first service IP and the smoke Service's name to its ClusterIP.
func checkDNS(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	dep := &appsv1.Deployment{}
	err = poll(ctx, 2*time.Second, func() error {
		if err := cs.get(ctx, "/apis/apps/v1/namespaces/kube-system/deployments/coredns", dep); err != nil {
			return unlessRetryable(err)
		}
		if dep.Status.ReadyReplicas < 1 {
			return fmt.Errorf("deployment coredns: %d of %d replicas ready", dep.Status.ReadyReplicas, dep.Status.Replicas)
		}
		return nil
	})
	if err != nil {
		return "", v.withJournals(ctx, err)
	}
	svc, err := smokeService(ctx, cs)
	if err != nil {
		return "", err
	}
	pod := smokePod(v.workerGuests()[0].info().name)
	names := []struct{ name, ip string }{
		{"kubernetes.default.svc." + v.c.Spec.ClusterDomain, v.c.FirstServiceIP().String()},
		{svc.Name + "." + smokeNamespace + ".svc." + v.c.Spec.ClusterDomain, svc.Spec.ClusterIP},
	}
	var got []string
	for _, n := range names {
		if _, err := v.pollKubectl(ctx, contains(n.ip), "exec", "-n", smokeNamespace, pod, "--", "/smoke", "lookup", n.name); err != nil {
			return "", err
		}
		got = append(got, n.name+" → "+n.ip)
	}
	return fmt.Sprintf("coredns %d/%d ready; from %s: %s", dep.Status.ReadyReplicas, dep.Status.Replicas, pod, strings.Join(got, ", ")), nil
}

// spreadName names the smoke Deployment and labels its pods.
const spreadName = "smoke-spread"

// checkSpread: a Deployment of the smoke workload with two replicas, which
// may not share a node (required pod anti-affinity on the hostname), has
// both ready on two workers: the scheduler places them, the controller
// manager's ReplicaSet creates them. One worker: the row says so.
func checkSpread(ctx context.Context, v *run) (string, error) {
	if len(v.workerGuests()) < 2 {
		return "one worker: no spread to check", nil
	}
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	labels := map[string]string{"app": spreadName}
	replicas := int32(2)
	want := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: spreadName, Namespace: smokeNamespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{smokeContainer()},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
							LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
							TopologyKey:   corev1.LabelHostname,
						}},
					}},
				},
			},
		},
	}
	path := "/apis/apps/v1/namespaces/" + smokeNamespace + "/deployments"
	if err := cs.create(ctx, path, want, &appsv1.Deployment{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create deployment %s: %w", spreadName, err)
	}
	var placed []string
	err = poll(ctx, 2*time.Second, func() error {
		pods := &corev1.PodList{}
		if err := cs.list(ctx, "/api/v1/namespaces/"+smokeNamespace+"/pods", "app="+spreadName, pods); err != nil {
			return unlessRetryable(err)
		}
		placed = placed[:0]
		nodes := map[string]bool{}
		var waiting []string
		for i := range pods.Items {
			p := &pods.Items[i]
			if err := podReady(p); err != nil {
				waiting = append(waiting, err.Error())
				continue
			}
			nodes[p.Spec.NodeName] = true
			placed = append(placed, p.Name+" on "+p.Spec.NodeName)
		}
		if len(placed) != 2 || len(nodes) != 2 {
			return fmt.Errorf("deployment %s: ready %s, want two pods on two workers; %s", spreadName, listOrNone(placed), strings.Join(waiting, "; "))
		}
		return nil
	})
	if err != nil {
		return "", v.withJournals(ctx, err)
	}
	return strings.Join(placed, ", "), nil
}

// checkPortForward: `kubectl port-forward` to the first worker's smoke pod
// (the API server's portforward subresource, the kubelet's streaming
// server, the runtime's port forwarding into the pod's namespace) carries
// HTTP from a local port to the pod.
func checkPortForward(ctx context.Context, v *run) (string, error) {
	ns, from := v.clientNS()
	pod := smokePod(v.workerGuests()[0].info().name)
	cmd, err := v.kubectlCmd(ctx, "port-forward", "-n", smokeNamespace, "pod/"+pod, "--address", "127.0.0.1", ":8080")
	if err != nil {
		return "", err
	}
	// Its output goes through a pipe of ours (read until the command is
	// stopped) and its stderr is read only once it has exited.
	pr, pw := io.Pipe()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = pw, &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	// Stopped by its PID (the command's own process), whatever happens.
	stop := sync.OnceValue(func() string {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		pw.Close()
		return strings.TrimSpace(stderr.String())
	})
	defer stop()
	local := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			// "Forwarding from 127.0.0.1:41783 -> 8080"
			if rest, ok := strings.CutPrefix(sc.Text(), "Forwarding from 127.0.0.1:"); ok {
				port, _, _ := strings.Cut(rest, " ")
				local <- port
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	var port string
	select {
	case port = <-local:
	case <-ctx.Done():
		return "", fmt.Errorf("kubectl port-forward to %s printed no local port: %s", pod, stop())
	}
	url := "http://127.0.0.1:" + port + "/"
	body, err := httpGet(ctx, ns, url)
	if err != nil {
		return "", fmt.Errorf("%s (port-forward to %s): %w; kubectl: %s", url, pod, err, stop())
	}
	if !strings.Contains(body, fmt.Sprintf(`"pod":%q`, pod)) {
		return "", fmt.Errorf("%s (port-forward to %s) answered %s", url, pod, body)
	}
	return fmt.Sprintf("%s in %s reaches %s", url, from, pod), nil
}

// checkNodePort: a NodePort Service of the smoke pods answers on every
// worker's address at its node port, from the gateway node (as an operator
// behind the bastion would reach it) when one is booted, else from where
// the worker rows speak (clientNS).
func checkNodePort(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	svc, err := ensureService(ctx, cs, "smoke-nodeport", corev1.ServiceTypeNodePort, map[string]string{"app": "smoke"})
	if err != nil {
		return "", err
	}
	port := svc.Spec.Ports[0].NodePort
	gw := v.gatewayGuest()
	var targets []string
	for _, g := range v.workerGuests() {
		n, _ := v.c.Node(g.info().name)
		url := "http://" + net.JoinHostPort(n.IP().String(), fmt.Sprint(port)) + "/"
		var err error
		if gw != nil {
			_, err = pollGuest(ctx, gw, contains(`"pod":"smoke-`), httpFromGuest(n.IP().String(), int(port))...)
		} else {
			ns, _ := v.clientNS()
			var body string
			if body, err = httpGet(ctx, ns, url); err == nil {
				err = contains(`"pod":"smoke-`)(body)
			}
		}
		if err != nil {
			return "", v.withJournals(ctx, fmt.Errorf("%s: %w", url, err))
		}
		targets = append(targets, url)
	}
	_, from := v.clientNS()
	if gw != nil {
		from = "the gateway node " + gw.info().name
	}
	return fmt.Sprintf("node port %d answers on %s from %s", port, strings.Join(targets, ", "), from), nil
}

// gatewayGuest is the first booted node with the gateway role, or nil.
func (v *run) gatewayGuest() guest {
	if gws := v.guestsWith(spec.RoleGateway); len(gws) > 0 {
		return gws[0]
	}
	return nil
}

// httpFromGuest is a command that GETs / from host:port on a guest with
// nothing but bash (an essential package of every Debian base): its
// /dev/tcp redirection opens the connection.
func httpFromGuest(host string, port int) []string {
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d && printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' >&3 && timeout 10 cat <&3`, host, port, host)
	return []string{"bash", "-c", script}
}

// pollGuest runs argv on a guest until it succeeds and check accepts its
// output.
func pollGuest(ctx context.Context, g guest, check func(string) error, argv ...string) (string, error) {
	return pollOutput(ctx, check, func() (string, error) { return g.run(ctx, argv...) })
}

// checkPodToPod: the smoke pod on each worker reaches the smoke pod on every
// other worker at its pod IP, across the node network: the worker's default
// route to the gateway, the gateway's route to the other's pod CIDR (the
// host contract, which the hub holds), the CNI bridge on both ends.
func checkPodToPod(ctx context.Context, v *run) (string, error) {
	ws := v.workerGuests()
	if len(ws) < 2 {
		return "one worker: no traffic across workers to check", nil
	}
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	ips := map[string]string{}
	for _, g := range ws {
		pod := &corev1.Pod{}
		name := smokePod(g.info().name)
		if err := cs.get(ctx, "/api/v1/namespaces/"+smokeNamespace+"/pods/"+name, pod); err != nil {
			return "", err
		}
		ips[g.info().name] = pod.Status.PodIP
	}
	var pairs []string
	for _, from := range ws {
		for _, to := range ws {
			a, b := from.info().name, to.info().name
			if a == b {
				continue
			}
			url := "http://" + net.JoinHostPort(ips[b], "8080") + "/"
			want := fmt.Sprintf(`"node":%q`, b)
			if _, err := v.pollKubectl(ctx, contains(want), "exec", "-n", smokeNamespace, smokePod(a), "--", "/smoke", "get", url); err != nil {
				return "", v.withJournals(ctx, fmt.Errorf("%s → %s (%s): %w", smokePod(a), smokePod(b), url, err))
			}
			pairs = append(pairs, fmt.Sprintf("%s → %s", smokePod(a), ips[b]))
		}
	}
	return strings.Join(pairs, ", "), nil
}
