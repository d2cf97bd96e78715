package bake

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardway-dev/hardway/rootfs"
)

// Status is one step's live progress: an artifact's bake. Its counters
// may be read while the step runs.
type Status struct {
	Name  string       // the artifact's name until the base says its OS (provisional)
	Total int64        // size of the base file
	Read  atomic.Int64 // base file bytes read
	// Written counts the artifact's (compressed) bytes.
	Written atomic.Int64
	rootfs.Counters
	Done atomic.Bool
}

// Progress collects the steps of a run for a progress display.
type Progress struct {
	mu    sync.Mutex
	steps []*Status
}

// Fraction is how far the step is, from 0 to 1 (at most 0.99 until done):
// the part of the base read.
func (s *Status) Fraction() float64 {
	if s.Done.Load() {
		return 1
	}
	if s.Total <= 0 {
		return 0
	}
	return min(0.99, float64(s.Read.Load())/float64(s.Total))
}

// Steps returns the steps started so far.
func (p *Progress) Steps() []*Status {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Status(nil), p.steps...)
}

// start registers a new step over a base file of size total.
func (p *Progress) start(name string, total int64) *Status {
	s := &Status{Name: name, Total: total}
	if p != nil {
		p.mu.Lock()
		p.steps = append(p.steps, s)
		p.mu.Unlock()
	}
	return s
}

// countReader counts the bytes read through it in each of its counters
// (the progress of every artifact baked from one read of the base).
type countReader struct {
	r  io.Reader
	ns []*atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, k := range c.ns {
		k.Add(int64(n))
	}
	return n, err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Every calls f with the running steps (those not done) every period, from
// another goroutine, until the returned function is called; that function
// returns once f is no longer running and may be called more than once.
func (p *Progress) Every(period time.Duration, f func(running []*Status)) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var running []*Status
				for _, s := range p.Steps() {
					if !s.Done.Load() {
						running = append(running, s)
					}
				}
				f(running)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		<-stopped
	}
}
