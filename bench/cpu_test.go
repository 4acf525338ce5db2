package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A run's CPU accounting says where the machine's time went while tandem
// delivered: this process (tandem, in-process, with its embedded broker),
// the PostgreSQL servers, anything else, and idle. With 2 cores a rate is
// bounded by the CPU as soon as idle is near zero.

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

// cpuSample is one reading of the CPU times that accounting compares.
type cpuSample struct {
	at          time.Time
	self        time.Duration // this process
	postgres    time.Duration // the servers' postmasters and their children, living and reaped
	busy, total time.Duration // the whole machine, all cores
	ok          bool          // false when /proc could not be read: no accounting
}

// postmaster returns the postmaster pid of the server behind pool, the
// parent of a backend.
func postmaster(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var backend int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0, err
	}
	f, err := procStat(backend)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1]) // ppid
}

// sampleCPU reads the CPU times of this process, of the servers whose
// postmasters are given, and of the machine.
func sampleCPU(postmasters ...int) cpuSample {
	s := cpuSample{at: time.Now(), ok: true}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		s.ok = false
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())

	pms := map[int]bool{}
	for _, pm := range postmasters {
		pms[pm] = true
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		ppid, _ := strconv.Atoi(f[1])
		if !pms[pid] && !pms[ppid] {
			continue
		}
		// utime, stime, cutime, cstime: fields 14-17, f[11:15]. A postmaster's
		// cutime and cstime hold its reaped children (backends, walsenders).
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			s.postgres += time.Duration(n) * time.Second / clockTicks
		}
	}

	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		s.ok = false
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		s.ok = false
		return s
	}
	for i, v := range fields[1:9] {
		n, _ := strconv.ParseInt(v, 10, 64)
		d := time.Duration(n) * time.Second / clockTicks
		s.total += d
		if i != 3 && i != 4 { // idle, iowait
			s.busy += d
		}
	}
	return s
}

// procStat returns the fields of /proc/<pid>/stat after the command name:
// f[0] is the state (field 3), f[1] the ppid (field 4).
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// cpuUse is the CPU time spent between two samples.
type cpuUse struct {
	wall, self, postgres, other, idle, capacity time.Duration
	ok                                          bool
}

func (a cpuSample) until(b cpuSample) cpuUse {
	u := cpuUse{wall: b.at.Sub(a.at), self: b.self - a.self, postgres: b.postgres - a.postgres, ok: a.ok && b.ok}
	u.capacity = b.total - a.total
	u.idle = u.capacity - (b.busy - a.busy)
	u.other = max(0, (b.busy-a.busy)-u.self-u.postgres)
	return u
}

func (u cpuUse) String() string {
	if !u.ok {
		return "CPU: not measured (/proc unreadable)"
	}
	s := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s" }
	return fmt.Sprintf("CPU over %s wall (%s on all cores): tandem process %s, postgres %s, other %s, idle %s",
		s(u.wall), s(u.capacity), s(u.self), s(u.postgres), s(u.other), s(u.idle))
}
