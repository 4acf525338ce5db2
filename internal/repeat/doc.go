// Package repeat logs a failure that repeats, such as a retry loop against
// a database that is down, once per distinct cause instead of once per
// attempt: the first failure of a cause at once, a reminder at the 10th,
// 100th, 1000th... (so a long outage stays visible in O(log n) lines), and
// when the cause changes or the failing stops, one line with how many times
// it failed and since when. A MariaDB restart then costs a handful of
// lines, not one per retry.
//
// It is a leaf: the retry loops of capture, apply, reconcile and the
// startup of a role each keep one Log per thing that fails.
package repeat
