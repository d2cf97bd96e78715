# etcdctl on the gateway {{ .Node }} (written by hardway): the etcd cluster of
# {{ .Cluster }} over TLS, as the etcd/healthcheck-client identity.
export ETCDCTL_API=3
export ETCDCTL_ENDPOINTS={{ join "," .Endpoints }}
export ETCDCTL_CACERT={{ .CACert }}
export ETCDCTL_CERT={{ .Cert }}
export ETCDCTL_KEY={{ .Key }}
