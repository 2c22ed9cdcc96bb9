import type { TicketRef } from '../src/change/ticket';
import { evidenceBundleOf } from '../src/evidence/evidence-bundle';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import type { TicketWriteBack } from '../src/itsm/source';
import { itsmCall } from './ticket-activities';

export interface TicketLifecycleDeps {
  writeBackFor: (source: string) => TicketWriteBack;
  evidence: EvidenceStore;
}

/**
 * What the workflow does to a ticket beyond notes and the gate: reopen one that closed without proven cleanup, attach
 * the evidence bundle once cleanup is verified. Each is one idempotent call into the source's write-back adapter; a
 * source whose adapter has no such operation answers `supported: false`, and the workflow carries on without it.
 */
export function createTicketLifecycleActivities({ writeBackFor, evidence }: TicketLifecycleDeps) {
  return {
    /** Moves a ticket that closed without proven cleanup back (the source's reopen state), with a note listing why. */
    async reopenTicket(input: { ticket: TicketRef; marker: string; reasons: string[] }): Promise<{ reopened: boolean; supported: boolean }> {
      const adapter = writeBackFor(input.ticket.source);
      const reopen = adapter.reopen?.bind(adapter);
      if (!reopen) return { reopened: false, supported: false };
      const text =
        `This change was closed before changegate had proven its identity cleanup, so it has been reopened. ` +
        `It can close once these are resolved:\n${input.reasons.map((r) => `- ${r}`).join('\n')}`;
      const { reopened } = await itsmCall(() => reopen(input.ticket, { marker: input.marker, text }));
      return { reopened, supported: true };
    },

    /** Attaches the ticket's evidence bundle (every row and the chain check) under `fileName`, once. */
    async attachEvidenceBundle(input: { ticket: TicketRef; fileName: string }): Promise<{ attached: boolean; rows: number; supported?: false }> {
      const adapter = writeBackFor(input.ticket.source);
      const attach = adapter.attachFile?.bind(adapter);
      if (!attach) return { attached: false, rows: 0, supported: false };
      const bundle = await evidenceBundleOf(evidence, input.ticket.source, input.ticket.key);
      if (!bundle) return { attached: false, rows: 0 };
      const content = Buffer.from(`${JSON.stringify(bundle, null, 2)}\n`, 'utf8');
      const { attached } = await itsmCall(() => attach(input.ticket, { name: input.fileName, contentType: 'application/json', content }));
      return { attached, rows: bundle.rows.length };
    },
  };
}

export type TicketLifecycleActivities = ReturnType<typeof createTicketLifecycleActivities>;
