package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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
	{"smoke pods: pod CIDR IPs, HTTP from a controller", checkPods},
	{"kubectl logs and exec (apiserver → kubelet)", checkLogsExec},
	{"CoreDNS resolves the API service from a pod", checkDNS},
	{"ClusterIP Service reaches the pods (kube-proxy)", checkClusterIP},
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
	env := func(name, field string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: field}}}
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: smokePod(node), Namespace: smokeNamespace, Labels: map[string]string{"app": "smoke"}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "smoke", Image: SmokeImage,
				// The archive is imported at first boot: never pull.
				ImagePullPolicy: corev1.PullNever,
				Env:             []corev1.EnvVar{env("POD_NAME", "metadata.name"), env("POD_NAMESPACE", "metadata.namespace"), env("NODE_NAME", "spec.nodeName"), env("POD_IP", "status.podIP")},
				Ports:           []corev1.ContainerPort{{ContainerPort: 8080, Name: "http"}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 2},
			}},
		},
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
	bin, err := v.binary("kubectl")
	if err != nil {
		return "", err
	}
	ns, _ := v.clientNS()
	kc := filepath.Join(v.o.Dir, "kubeconfigs", "admin.kubeconfig")
	if v.o.Boot {
		kc = filepath.Join(v.o.Dir, "kubeconfigs", "admin-api.kubeconfig")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := nsCommand(ctx, ns, bin, append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// pollKubectl runs kubectl until it succeeds and check accepts its output.
func (v *run) pollKubectl(ctx context.Context, check func(string) error, args ...string) (string, error) {
	var out string
	err := poll(ctx, 2*time.Second, func() error {
		var err error
		if out, err = v.kubectl(ctx, args...); err != nil {
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
	return fmt.Sprintf("logs of %s show the controller's request; exec of /smoke get in each answers ok", strings.Join(pods, ", ")), nil
}

// checkDNS: CoreDNS (the bootstrap manifests' Deployment) runs on the
// workers and a pod resolves kubernetes.default.svc.<clusterDomain> to the
// first service IP through the kubelet's resolv.conf, the clusterDNS
// Service and kube-proxy.
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
	name := "kubernetes.default.svc." + v.c.Spec.ClusterDomain
	want := v.c.FirstServiceIP().String()
	pod := smokePod(v.workerGuests()[0].info().name)
	if _, err := v.pollKubectl(ctx, contains(want), "exec", "-n", smokeNamespace, pod, "--", "/smoke", "lookup", name); err != nil {
		return "", err
	}
	return fmt.Sprintf("coredns %d/%d ready; %s resolves %s to %s", dep.Status.ReadyReplicas, dep.Status.Replicas, pod, name, want), nil
}

// checkClusterIP: a Service selecting the smoke pods answers on its
// ClusterIP from a pod (kube-proxy's rules on the worker), and by its name.
func checkClusterIP(ctx context.Context, v *run) (string, error) {
	cs, err := v.clientset("super-admin")
	if err != nil {
		return "", err
	}
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: smokeNamespace},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "smoke"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	svc := &corev1.Service{}
	path := "/api/v1/namespaces/" + smokeNamespace + "/services"
	if err := cs.create(ctx, path, want, svc); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return "", err
		}
		if err := cs.get(ctx, path+"/smoke", svc); err != nil {
			return "", err
		}
	}
	pod := smokePod(v.workerGuests()[0].info().name)
	url := "http://" + svc.Spec.ClusterIP + "/"
	if _, err := v.pollKubectl(ctx, contains(`"pod":"smoke-`), "exec", "-n", smokeNamespace, pod, "--", "/smoke", "get", url); err != nil {
		return "", v.withJournals(ctx, err)
	}
	byName := "http://smoke." + smokeNamespace + ".svc." + v.c.Spec.ClusterDomain + "/"
	if _, err := v.pollKubectl(ctx, contains(`"pod":"smoke-`), "exec", "-n", smokeNamespace, pod, "--", "/smoke", "get", byName); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s answers from %s, and as %s", url, pod, byName), nil
}

// checkPodToPod: the smoke pod on each worker reaches the smoke pod on every
// other worker at its pod IP, across the node network: the worker's route
// to the other's pod CIDR (its network file), the CNI bridge on both ends.
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
