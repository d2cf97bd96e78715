# etcdctl on the gateway {{ comment .Node }} (written by hardway): the etcd cluster of
# {{ comment .Cluster }} over TLS, as the etcd/healthcheck-client identity.
export ETCDCTL_API=3
export ETCDCTL_ENDPOINTS={{ shq (join "," .Endpoints) }}
export ETCDCTL_CACERT={{ .CACert }}
export ETCDCTL_CERT={{ .Cert }}
export ETCDCTL_KEY={{ .Key }}
