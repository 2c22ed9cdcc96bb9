import type { TicketSource, SourceClients, TicketWriteBack } from './source';
import { servicenow } from './servicenow';
import { jira } from './jira';

const sources = new Map<string, TicketSource>();

const NAME = /^[a-z][a-z0-9-]{1,19}$/;

/** Adds a ticket source: its webhook, change routes and write-backs work from the next request on. */
export function register(source: TicketSource): void {
  if (!NAME.test(source.name)) throw new Error(`ticket source name '${source.name}' must be 2-20 lower-case letters, digits or -`);
  if (sources.has(source.name)) throw new Error(`ticket source '${source.name}' is already registered`);
  sources.set(source.name, source);
}

export function ticketSource(name: string): TicketSource | undefined {
  return sources.get(name);
}

export function ticketSourceNames(): string[] {
  return [...sources.keys()];
}

/** Resolves each source's write-back adapter on first use, so a source registered after the worker started works too. */
export function writeBacks(clients: SourceClients): (source: string) => TicketWriteBack {
  const built = new Map<string, TicketWriteBack>();
  return (name) => {
    let adapter = built.get(name);
    if (!adapter) {
      const source = sources.get(name);
      if (!source) throw new Error(`no ticket source named '${name}' is registered (registered: ${ticketSourceNames().join(', ')})`);
      adapter = source.writeBack(clients);
      built.set(name, adapter);
    }
    return adapter;
  };
}

register(servicenow);
register(jira);
