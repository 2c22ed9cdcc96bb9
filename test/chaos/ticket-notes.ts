import type { ServiceNowSimulator } from '../../src/itsm/servicenow/servicenow-simulator';

/** A step outcome told on a ticket: the outbox writes "[changegate <marker>] Verified…" or "… FAILED…" per note. */
export interface OutcomeLine {
  marker: string;
  text: string;
}

/** Every step outcome told on a change's work notes, in the order they landed. */
export function outcomeLines(sim: ServiceNowSimulator, sysId: string): OutcomeLine[] {
  return sim.journal(sysId, 'work_notes')
    .flatMap((n) => n.value.split('\n'))
    .map((line) => /^\[changegate ([^\]]+)\] ((?:Verified|FAILED).*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ marker: m[1] as string, text: m[2] as string }));
}

/** Notes that landed more than once: each marker names one note, so a marker seen again is a note written twice. */
export function duplicatedNotes(lines: OutcomeLine[]): number {
  return lines.length - new Set(lines.map((l) => l.marker)).size;
}

/** Which of these "<kind> <name>" steps no "Verified" note tells. */
export function untold(lines: OutcomeLine[], steps: Array<{ kind: string; name: string }>): Array<{ kind: string; name: string }> {
  const verified = lines.filter((l) => l.text.startsWith('Verified'));
  return steps.filter((s) => !verified.some((l) => l.text.includes(`${s.kind} ${s.name}@`)));
}
