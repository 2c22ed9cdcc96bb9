/** A step outcome told on a ticket: the outbox writes "[changegate <marker>] Verified…" or "… FAILED…" per note. */
export interface OutcomeLine {
  marker: string;
  text: string;
}

/**
 * Every step outcome told in a ticket's notes, in the order they landed: ServiceNow work notes carry
 * "[changegate <marker>] <text>" on one line, Jira comments the tag as a paragraph of its own and the text after it.
 */
export function outcomeLines(notes: string[]): OutcomeLine[] {
  const out: OutcomeLine[] = [];
  for (const note of notes) {
    const lines = note.split('\n');
    lines.forEach((line, i) => {
      const m = /^\[changegate ([^\]]+)\](?: (.*))?$/.exec(line);
      if (!m) return;
      const text = m[2] ?? lines[i + 1] ?? '';
      if (/^(Verified|FAILED)/.test(text)) out.push({ marker: m[1] as string, text });
    });
  }
  return out;
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
