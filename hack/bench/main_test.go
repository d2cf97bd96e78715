package main

import (
	"errors"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	ms := func(walls ...int) []result {
		var rs []result
		for i, w := range walls {
			rs = append(rs, result{wall: time.Duration(w) * time.Millisecond, cpu: time.Duration(10*w) * time.Millisecond, rss: int64(100 + i)})
		}
		return rs
	}
	for _, c := range []struct {
		walls   []int
		want    time.Duration
		wantRSS int64
	}{
		{[]int{30, 10, 20, 50, 40}, 30 * time.Millisecond, 104},
		{[]int{10, 20}, 20 * time.Millisecond, 101}, // the slower middle one
		{[]int{7}, 7 * time.Millisecond, 100},
	} {
		got := median(ms(c.walls...))
		if got.wall != c.want || got.cpu != 10*c.want || got.rss != c.wantRSS {
			t.Errorf("median of %v = wall %v, CPU %v, RSS %d; want wall %v, CPU %v (the same run's), RSS %d (the largest)",
				c.walls, got.wall, got.cpu, got.rss, c.want, 10*c.want, c.wantRSS)
		}
	}
	rs := ms(10, 20, 30)
	rs[2].err = errors.New("killed")
	if got := median(rs); got.err == nil {
		t.Errorf("median with a failed run = %+v, want its failure", got)
	}
}
