/**
 * ISO-8601 durations (PnYnMnWnDTnHnMnS). Years and months have no fixed length; for TTLs they are counted as
 * 365 and 30 days, which the README documents. Fractions are allowed on the smallest unit only, as the standard says.
 */
const PATTERN =
  /^P(?!$)(?:(\d+(?:[.,]\d+)?)Y)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)W)?(?:(\d+(?:[.,]\d+)?)D)?(?:T(?!$)(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)S)?)?$/;

const UNIT_MS = [365 * 86_400_000, 30 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1_000];

/** Milliseconds of an ISO-8601 duration, or null if the text is not one. */
export function parseIsoDuration(text: string): number | null {
  const match = PATTERN.exec(text);
  if (!match) return null;
  const parts = match.slice(1);
  const given = parts.map((p, i) => (p === undefined ? -1 : i)).filter((i) => i >= 0);
  // Only the last given unit may carry a fraction.
  if (given.slice(0, -1).some((i) => /[.,]/.test(parts[i] ?? ''))) return null;
  let ms = 0;
  parts.forEach((p, i) => {
    if (p !== undefined) ms += Number(p.replace(',', '.')) * (UNIT_MS[i] ?? 0);
  });
  return Number.isFinite(ms) ? Math.round(ms) : null;
}
