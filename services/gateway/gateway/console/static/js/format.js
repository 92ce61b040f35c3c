// How times, durations and values read on the pages.

const timeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "short",
  timeStyle: "medium",
});

/** A moment (epoch ms, ISO string or Date) as local date and time; "—" for none. */
export function when(moment) {
  if (moment === null || moment === undefined || moment === "") return "—";
  const date = moment instanceof Date ? moment : new Date(moment);
  return Number.isNaN(date.getTime()) ? String(moment) : timeFormat.format(date);
}

/** A `<time>`-ready ISO string of a moment, or undefined. */
export function iso(moment) {
  if (moment === null || moment === undefined) return undefined;
  const date = new Date(moment);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** A duration in ms as "850 ms", "4.2 s", "3 min 5 s" or "2 h 10 min"; "—" for none. */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A JSON value, indented, for a `<pre>`. */
export function pretty(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

/** A `datetime-local` input's value as an ISO time with zone (the API refuses times without). */
export function localInputToIso(value) {
  return value ? new Date(value).toISOString() : undefined;
}

/** The same, as epoch ms. */
export function localInputToMs(value) {
  return value ? new Date(value).getTime() : undefined;
}
