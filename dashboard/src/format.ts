/** A span of time as a person reads it: "2 d 3 h", "45 min", "under a minute". */
export function span(ms: number): string {
  const minutes = Math.floor(Math.abs(ms) / 60_000);
  if (minutes < 1) return 'under a minute';
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  return `${m} min`;
}

/** Time left to a deadline, or how far past it. */
export function timeLeft(ms: number): string {
  return ms < 0 ? `overdue by ${span(ms)}` : `${span(ms)} left`;
}
