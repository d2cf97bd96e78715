# hardway — see README.md. `make run` generates the seed example; `make test` is the full suite.
GO      ?= go
SPEC    ?= examples/seed-lxc.yaml
OUT     ?= out
TOOLBIN := $(CURDIR)/bin/tools
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

export GOTOOLCHAIN := local

.PHONY: all build run deps tools runtime coredns images images-list test test-boot-kvm e2e test-short vet fuzz bench bench-bake base base-small base-kvm verify plugin plugin-generate docs clean

all: build

build:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/hardway ./cmd/hardway

## run: generate out/<cluster>/ from the seed's LXC example (SPEC=..., OUT=...)
run: build
	./bin/hardway validate -f $(SPEC)
	./bin/hardway generate -f $(SPEC) --dir $(OUT)

## deps: the Debian packages the tests drive (apt-get, as root)
deps:
	hack/deps.sh

## tools: pinned etcd, Kubernetes, cfssl, Packer and packer-sdc binaries built from
## the module proxy, cached under ~/.cache/hardway/bin and linked into bin/tools
tools:
	@mkdir -p $(TOOLBIN)
	@for d in $$(hack/tools.sh all); do ln -sf $$d/* $(TOOLBIN)/; done
	@ls $(TOOLBIN)

## runtime: a worker's pinned runtime (containerd v2, runc, the CNI plugins, crictl),
## built from the module proxy like the tools, linked into bin/runtime
RUNTIMEBIN := $(CURDIR)/bin/runtime
runtime: deps
	@mkdir -p $(RUNTIMEBIN)
	@for d in $$(hack/tools.sh runtime); do ln -sf $$d/* $(RUNTIMEBIN)/; done
	@ls $(RUNTIMEBIN)

## coredns: the CoreDNS binary the CoreDNS image packs, built like the tools
coredns:
	@hack/tools.sh coredns >/dev/null

## images: OCI image archives built from source (tools/images; no registry, no daemon):
## registry.k8s.io/pause:3.10.1, registry.k8s.io/coredns/coredns:v1.12.1 and hardway.dev/smoke:v0.2.0,
## cached under ~/.cache/hardway/images; prints their absolute paths, one per line
MKIMAGES = bin=$$(hack/tools.sh coredns) && cd tools/images && GOWORK=off $(GO) run ./cmd/mkimages -coredns "$$bin/coredns"
images:
	@$(MKIMAGES)

# images-list: the archives' paths in bin/images.list (HARDWAY_IMAGES of the
# tests), replaced whole once they are built. Not `$(MAKE) images > file`
# in a recipe: make -n runs a line that names $(MAKE), redirect included,
# and wrote its dry run into the list.
images-list:
	@mkdir -p bin && ($(MKIMAGES)) > bin/images.list.tmp && mv bin/images.list.tmp bin/images.list

vet:
	$(GO) vet ./...
	cd packer && $(GO) vet ./...
	cd tools/images && $(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# TEST_ENV points the tests at what make tools, runtime and images built.
TEST_ENV = HARDWAY_BIN_DIR=$(TOOLBIN) HARDWAY_RUNTIME_DIR=$(RUNTIMEBIN) HARDWAY_IMAGES=$(CURDIR)/bin/images.list
# BOOT_KVM_TEST boots the seed's KVM cluster (TestBootSeedKVM, which skips
# without HARDWAY_BOOT_KVM=1 so that go test ./... stays the quicker loop).
BOOT_KVM_TEST = HARDWAY_BOOT_KVM=1 $(TEST_ENV) $(GO) test -count=1 -timeout 40m -run '^TestBootSeedKVM$$' -v ./verify

## test: everything, with the real tools (installs what it needs). The pinned
## tools, runtime and CoreDNS (CPU) and the three test bases (debootstrap:
## network, disk) build at once; then the image archives are packed.
test: deps
	$(MAKE) -j3 tools runtime coredns base base-small base-kvm
	$(MAKE) images-list
	$(MAKE) vet
	$(TEST_ENV) $(GO) test -count=1 -timeout 45m ./...
	cd packer && HARDWAY_BIN_DIR=$(TOOLBIN) $(GO) test -count=1 -timeout 20m ./...
	# The image builder: references against the generators, pause in a PID
	# namespace, the smoke server, and each archive imported and run by the
	# pinned containerd.
	cd tools/images && $(GO) test -count=1 ./...
	$(MAKE) fuzz FUZZTIME=15s
	# The seed's KVM cluster under qemu (test-boot-kvm), alone: three
	# emulated VMs need the 2 cores the parallel tests above share.
	$(BOOT_KVM_TEST)

## e2e: boot every node of SPEC from its baked artifact and run verify --boot's rows
## (SPEC=examples/seed-lxc.yaml by default), on a pinned copy of SPEC in E2E_DIR with
## the binaries of make tools and make runtime, the archives of make images and a
## throwaway SSH key for the gateway row
E2E_DIR ?= $(CURDIR)/out/e2e
e2e: build deps
	$(MAKE) -j3 tools runtime coredns base base-kvm
	$(MAKE) images-list
	@rm -rf $(E2E_DIR) && mkdir -p $(E2E_DIR)
	spec=$$($(GO) run ./hack/e2e -spec $(SPEC) -dir $(E2E_DIR) -bin-dir $(TOOLBIN) -bin-dir $(RUNTIMEBIN) -images bin/images.list) && \
	./bin/hardway verify -f "$$spec" --boot --base "$$(hack/base.sh path)" --kvm-base "$$(hack/base.sh path --kvm)" \
		--dir $(E2E_DIR)/out --bin-dir $(TOOLBIN) --ssh-identity $(E2E_DIR)/ssh/id_ed25519

## test-boot-kvm: the seed's KVM cluster (examples/seed-kvm.yaml) baked into
## KVM images and booted under qemu with OVMF, every row of verify --boot
## (root; 11 minutes and more without KVM acceleration); the last step of make test
test-boot-kvm: deps
	$(MAKE) -j3 tools runtime coredns base-kvm
	$(MAKE) images-list
	$(BOOT_KVM_TEST)

## test-short: the quick loop, no external tools
test-short:
	$(GO) test -short ./...
	cd packer && $(GO) test -short ./...
	cd tools/images && $(GO) test -short ./...

FUZZTIME ?= 2m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./spec

## bench: generate 3 controllers + N workers (BENCH_WORKERS) against the cfssl CLI and kubeadm baselines and tar -x of the output,
## then print issue #14's targets with the figures measured and met or not
BENCH_WORKERS ?= 10,100,1000,10000
bench: build tools
	$(GO) run ./hack/bench -hardway bin/hardway -tools $(TOOLBIN) -workers $(BENCH_WORKERS)

## verify: run SPEC's control plane in network namespaces and smoke-test it (root)
verify: build tools
	./bin/hardway verify -f $(SPEC) --bin-dir $(TOOLBIN)

PLUGIN_VERSION    ?= 0.1.0
PLUGIN_PRERELEASE ?= dev
PLUGIN_LDFLAGS    := -X github.com/hardway-dev/hardway/packer/version.Version=$(PLUGIN_VERSION) -X github.com/hardway-dev/hardway/packer/version.VersionPrerelease=$(PLUGIN_PRERELEASE)

## plugin: bin/packer-plugin-hardway (Packer plugin), its .sha256, and packer-sdc plugin-check
plugin:
	cd packer && $(GO) build -trimpath -ldflags "$(PLUGIN_LDFLAGS)" -o ../bin/packer-plugin-hardway ./cmd/packer-plugin-hardway
	cd bin && sha256sum packer-plugin-hardway > packer-plugin-hardway.sha256
	cd bin && $$(../hack/tools.sh packer-sdc)/packer-sdc plugin-check packer-plugin-hardway

## docs: regenerate docs/cli.md from the commands (the flags, JSON documents and exit
## statuses; TestCLIDoc fails when it is stale)
docs:
	$(GO) test ./cmd/hardway -run '^TestCLIDoc$$' -count=1 -update

## plugin-generate: regenerate the plugin's HCL2 specs and docs (packer-sdc v0.6.10)
plugin-generate:
	hack/packer.sh generate

clean:
	rm -rf bin out

## base: a Debian bookworm base rootfs (debootstrap), cached under ~/.cache/hardway/base, indexed (hardway base index)
base: build
	hack/base.sh

## base-small: minbase + systemd only, what the bake tests boot (about 6 minutes once, cached)
base-small:
	hack/base.sh --small

## base-kvm: the small base + a kernel, initrd and systemd-boot, what the KVM bake test boots (about 11 minutes once, cached)
base-kvm:
	hack/base.sh --kvm

## bench-bake: bake the seed's worker (real binaries) as an LXC template (full base, indexed as hack/base.sh writes it)
## against tar -c | zstd -T0 -3, and as a KVM qcow2 image (kvm base) against mke2fs -d + qemu-img convert, on the
## same content (BENCH_FORMAT=lxc|kvm|both; BENCH_BASE=plain bakes from the same tar stream as one zstd stream, zstd -T0 -3)
BENCH_FORMAT ?= both
BENCH_BASE ?= indexed
bench-bake: build tools base base-kvm
	$(MAKE) images-list
	base=$$(hack/base.sh path); \
	if [ "$(BENCH_BASE)" = plain ]; then \
	  plain=$${base%.tar.zst}.plain.tar.zst; \
	  [ "$$plain" -nt "$$base" ] || { zstd -dc "$$base" | zstd -q -T0 -3 -o "$$plain.tmp" -f && mv -f "$$plain.tmp" "$$plain"; } || exit 1; \
	  base=$$plain; \
	fi; \
	$(GO) run ./hack/benchbake -hardway bin/hardway -format $(BENCH_FORMAT) -base "$$base" -kvm-base $$(hack/base.sh path --kvm) -bin $$(hack/tools.sh path k8s) -images bin/images.list
