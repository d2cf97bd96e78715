package testdeps_test

import (
	_ "github.com/coreos/butane/config"
	_ "github.com/coreos/ignition/v2/config/v3_4"
	_ "k8s.io/apiserver/pkg/apis/apiserver/v1"
	_ "k8s.io/client-go/tools/clientcmd"
	_ "k8s.io/kube-proxy/config/v1alpha1"
	_ "k8s.io/kube-scheduler/config/v1"
	_ "k8s.io/kubelet/config/v1beta1"
	_ "sigs.k8s.io/yaml"
)

// Bake (rootfs layering, LXC templates).
import (
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/ulikunitz/xz"
	_ "golang.org/x/term"
)
