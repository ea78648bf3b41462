package api

import (
	"sync"
	"time"
)

const (
	// repeatWindow is how long an error line is not logged again after it was.
	repeatWindow = time.Minute
	// maxRepeatLines bounds the distinct lines a repeatLog remembers; beyond it, lines are
	// counted together.
	maxRepeatLines = 256
)

// repeatLog logs each distinct line once per window: repeats within it are counted and told
// in one line when the window ends. An etcd outage under load then gives a couple of lines a
// minute instead of one per request.
type repeatLog struct {
	window time.Duration
	printf func(format string, args ...any)

	mu      sync.Mutex
	repeats map[string]int // lines logged in the current window: how often they came again
	others  int            // lines not logged because repeats was full
}

func newRepeatLog(window time.Duration, printf func(format string, args ...any)) *repeatLog {
	return &repeatLog{window: window, printf: printf, repeats: map[string]int{}}
}

// print logs line, unless it was logged less than a window ago.
func (l *repeatLog) print(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.repeats[line]; ok {
		l.repeats[line] = n + 1
		return
	}
	if len(l.repeats) >= maxRepeatLines {
		if l.others == 0 {
			time.AfterFunc(l.window, l.flushOthers)
		}
		l.others++
		return
	}
	l.repeats[line] = 0
	l.printf("%s", line)
	time.AfterFunc(l.window, func() { l.flush(line) })
}

// flush ends line's window, telling how often it came again meanwhile.
func (l *repeatLog) flush(line string) {
	l.mu.Lock()
	n := l.repeats[line]
	delete(l.repeats, line)
	l.mu.Unlock()
	if n > 0 {
		l.printf("%s (%d more times in %v)", line, n, l.window)
	}
}

// flushOthers tells how many lines were not logged because too many distinct ones came.
func (l *repeatLog) flushOthers() {
	l.mu.Lock()
	n := l.others
	l.others = 0
	l.mu.Unlock()
	l.printf("%d more errors in %v, not logged", n, l.window)
}
