import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import vm from 'node:vm';

/**
 * Runs the business rules of integrations/servicenow/ — the very files an administrator pastes into ServiceNow —
 * on the simulator's record writes, in a `vm` sandbox that offers the small part of the server-side API those
 * scripts use: a GlideRecord-like `current`/`previous` with GlideElement fields (`changes()`, `changesTo()`),
 * `setAbortAction`, `gs`, `GlideDigest`, `GlideDateTime`, `GlideCertificateEncryption`, `GlideStringUtil` and
 * `sn_ws.RESTMessageV2`. Each script's header declares how it is installed (when, order, insert/update, filter
 * condition); the simulator installs it the same way. Anything a script calls that is not emulated throws, so a
 * script that would fail in ServiceNow fails here too.
 */

type Row = Record<string, string>;

/** change_request state values and labels (reference/itsm-contracts.md). */
export const STATE_LABELS: Readonly<Record<string, string>> = {
  '-5': 'New',
  '-4': 'Assess',
  '-3': 'Authorize',
  '-2': 'Scheduled',
  '-1': 'Implement',
  '0': 'Review',
  '3': 'Closed',
  '4': 'Canceled',
};

export const REFERENCE_TABLES: Readonly<Record<string, string>> = {
  assignment_group: 'sys_user_group',
  cmdb_ci: 'cmdb_ci',
  requested_by: 'sys_user',
  assigned_to: 'sys_user',
};

/** Dictionary internal types of the change_request columns the simulator keeps; any other column is a string. */
const INTERNAL_TYPES: Readonly<Record<string, string>> = {
  work_notes: 'journal_input',
  comments: 'journal_input',
  assignment_group: 'reference',
  cmdb_ci: 'reference',
  requested_by: 'reference',
  assigned_to: 'reference',
  on_hold: 'boolean',
  active: 'boolean',
  state: 'integer',
  risk: 'integer',
  impact: 'integer',
  priority: 'integer',
  sys_mod_count: 'integer',
  start_date: 'glide_date_time',
  end_date: 'glide_date_time',
  sys_created_on: 'glide_date_time',
  sys_updated_on: 'glide_date_time',
  sys_id: 'GUID',
};

/** Column labels a filter condition may name, and the choice labels it may compare with. */
const COLUMN_LABELS: Readonly<Record<string, string>> = { State: 'state', Approval: 'approval', Type: 'type', 'Identity actions': 'u_identity_actions' };
const CHOICE_VALUES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  state: Object.fromEntries(Object.entries(STATE_LABELS).map(([value, label]) => [label, value])),
};

const RULE_TIMEOUT_MS = 1_000;

export interface InstallKitRule {
  name: string;
  file: string;
  sysId: string;
  when: 'before' | 'after';
  order: number;
  insert: boolean;
  update: boolean;
  /** The filter condition exactly as the header writes it, e.g. `State | changes to | Closed`, or `(none)`. */
  filter: string;
  matches(current: Row, previous: Row | undefined): boolean;
  script: vm.Script;
}

/** What `sn_ws.RESTMessageV2.executeAsync()` queued: sent once the transaction has committed, as the ECC queue does. */
export interface OutboundRequest {
  endpoint: string;
  method: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs?: number;
}

export interface SystemLogEntry {
  level: 'info' | 'warn' | 'error';
  message: string;
  source: string;
}

/** The folder that ships the rules: the nearest `integrations/servicenow` above this file (src/ or dist/src/). */
export function defaultInstallKitDir(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'integrations', 'servicenow');
    if (existsSync(join(candidate, 'INSTALL.md'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`no integrations/servicenow/INSTALL.md above ${__dirname}`);
  }
}

function headerField(header: string, file: string, pattern: RegExp, what: string): string {
  const match = pattern.exec(header);
  if (!match) throw new Error(`${file}: the header comment does not say ${what}`);
  return match[1].trim();
}

function changes(name: string, current: Row, previous: Row | undefined): boolean {
  if (INTERNAL_TYPES[name] === 'journal_input') return false; // changes() is not available for journal fields
  return (current[name] ?? '') !== (previous?.[name] ?? '');
}

/**
 * The filter conditions the kit uses: `(none)`, `<Column> | changes`, `<Column> | changes to | <Choice>`, and
 * conditions of those joined by ` OR ` (the condition builder's OR, `^OR` in an encoded query).
 */
function parseFilter(filter: string, file: string): InstallKitRule['matches'] {
  if (filter === '(none)') return () => true;
  const alternatives = filter.split(' OR ');
  if (alternatives.length > 1) {
    const each = alternatives.map((a) => parseFilter(a.trim(), file));
    return (c, p) => each.some((m) => m(c, p));
  }
  const parts = filter.split('|').map((p) => p.trim());
  const column = COLUMN_LABELS[parts[0]];
  if (column && parts.length === 2 && parts[1] === 'changes') return (c, p) => changes(column, c, p);
  const value = column ? CHOICE_VALUES[column]?.[parts[2]] : undefined;
  if (value !== undefined && parts.length === 3 && parts[1] === 'changes to') {
    return (c, p) => changes(column, c, p) && c[column] === value;
  }
  throw new Error(`${file}: filter condition '${filter}' is not one the simulator knows`);
}

/** Loads every `*.js` in the kit folder as a business rule, installed as its header comment says. */
export function loadInstallKit(dir: string): InstallKitRule[] {
  const rules = readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .sort()
    .map((file): InstallKitRule => {
      const path = resolve(dir, file);
      const source = readFileSync(path, 'utf8');
      const header = /\/\*([\s\S]*?)\*\//.exec(source.replace(/^\/\* global [^*]*\*\/\s*/, ''))?.[1] ?? '';
      const filter = headerField(header, file, /Filter conditions:([^\n]*)/, 'its filter conditions');
      return {
        name: headerField(header, file, /Business rule "([^"]+)"/, 'the rule name'),
        file,
        sysId: randomBytes(16).toString('hex'),
        when: headerField(header, file, /When:\s*(before|after)\b/, 'when it runs') as 'before' | 'after',
        order: Number(headerField(header, file, /Order:\s*(\d+)/, 'its order')),
        insert: headerField(header, file, /Insert:\s*(yes|no)\b/, 'whether it runs on insert') === 'yes',
        update: headerField(header, file, /Update:\s*(yes|no)\b/, 'whether it runs on update') === 'yes',
        filter: filter.trim(),
        matches: parseFilter(filter.trim(), file),
        script: new vm.Script(source, { filename: path }),
      };
    });
  return rules.sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

/**
 * A GlideRecord over one row. `previous` is the stored record (undefined on insert), which is what `changes()`
 * compares with — also in after rules, where ServiceNow has not reset the previous values yet. `action` is the
 * write's abort flag, shared by every rule that runs on it, as they share one `current`.
 */
function glideRecord(row: Row, previous: Row | undefined, action: { aborted: boolean } = { aborted: false }) {
  const element = (name: string) => ({
    getName: () => name,
    getED: () => ({ getInternalType: () => INTERNAL_TYPES[name] ?? 'string' }),
    getReferenceTable: () => REFERENCE_TABLES[name] ?? '',
    changes: () => changes(name, row, previous),
    changesTo: (value: unknown) => changes(name, row, previous) && (row[name] ?? '') === String(value),
    changesFrom: (value: unknown) => changes(name, row, previous) && (previous?.[name] ?? '') === String(value),
    nil: () => (row[name] ?? '') === '',
    toString: () => row[name] ?? '',
  });
  const record: Record<string, unknown> = {
    /** null for an empty field; booleans as "1"/"0", as GlideRecord.getValue() returns them. */
    getValue(name: string): string | null {
      const value = row[String(name)];
      if (value === undefined || value === '') return null;
      if (INTERNAL_TYPES[String(name)] === 'boolean') return value === 'true' || value === '1' ? '1' : '0';
      return value;
    },
    setValue(name: string, value: unknown): void {
      row[String(name)] = value === null || value === undefined ? '' : String(value);
    },
    setAbortAction(flag: boolean): void {
      action.aborted = flag === true;
    },
    isActionAborted: () => action.aborted,
    /** Global scope hands back a java.util.ArrayList; the kit's scripts accept that shape. */
    getElements() {
      const elements = Object.keys(row).map(element);
      return { size: () => elements.length, get: (i: number) => elements[i] };
    },
    getTableName: () => 'change_request',
  };
  for (const name of Object.keys(row)) {
    Object.defineProperty(record, name, { get: () => element(name), enumerable: true });
  }
  return record;
}

export interface RuleEngineOptions {
  rules: InstallKitRule[];
  /** System properties as `gs.getProperty` reads them. */
  properties(): Readonly<Record<string, string | undefined>>;
  log(entry: SystemLogEntry): void;
  newGuid(): string;
  /** Whether a rule is active (an administrator may deactivate one, or never install it); default all. */
  isActive?(rule: InstallKitRule): boolean;
  /** The instance's clock (GlideDateTime); default the machine's. */
  now?(): number;
}

export interface BeforeResult {
  /** Set when the abort flag is still set after the last before rule: the first rule that set it. */
  abortedBy?: InstallKitRule;
  errorMessages: string[];
}

export function createRuleEngine(opts: RuleEngineOptions) {
  function sandbox(rule: InstallKitRule, current: unknown, previous: unknown, outbound: OutboundRequest[], errorMessages: string[]) {
    const log = (level: SystemLogEntry['level']) => (message: unknown) => opts.log({ level, message: String(message), source: rule.name });
    const gs = {
      getProperty(name: string, fallback?: unknown) {
        const value = opts.properties()[String(name)];
        return value === undefined ? (fallback === undefined ? null : fallback) : value;
      },
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      addErrorMessage: (message: unknown) => errorMessages.push(String(message)),
      getMessage: (message: unknown) => String(message),
      generateGUID: () => opts.newGuid(),
    };
    class GlideDigest {
      /** Upper-case hex: GlideDigest's case is not documented and community scripts lower-case it, so the kit must too. */
      getSHA256Hex(source: unknown): string {
        return createHash('sha256').update(String(source), 'utf8').digest('hex').toUpperCase();
      }
    }
    class GlideDateTime {
      private readonly ms = opts.now?.() ?? Date.now();
      getNumericValue(): number {
        return this.ms;
      }
    }
    /**
     * The global-scope class (the kit's rules live in the global scope; the scoped-app `CertificateEncryption` is not
     * offered, so a rule that names it fails here as it would in global scope). Base64 MAC, keyed with the
     * Base64-decoded key; the data's characters are taken as UTF-8, which for the kit's all-ASCII strings is the
     * same whatever charset the platform picks.
     */
    class GlideCertificateEncryption {
      generateMac(base64Key: unknown, algorithm: unknown, data: unknown): string {
        const algorithms: Record<string, string> = { HmacSHA256: 'sha256', HmacSHA1: 'sha1', HmacMD5: 'md5' };
        const alg = algorithms[String(algorithm)];
        if (!alg) throw new Error(`GlideCertificateEncryption.generateMac: algorithm ${String(algorithm)} is not emulated`);
        return createHmac(alg, Buffer.from(String(base64Key), 'base64')).update(String(data), 'utf8').digest('base64');
      }
    }
    const GlideStringUtil = { base64Encode: (text: unknown) => Buffer.from(String(text), 'utf8').toString('base64') };
    class RESTMessageV2 {
      private request: OutboundRequest = { endpoint: '', method: 'GET', headers: {}, body: '' };
      setEndpoint(url: unknown): void {
        this.request.endpoint = String(url);
      }
      setHttpMethod(method: unknown): void {
        this.request.method = String(method).toUpperCase();
      }
      setHttpTimeout(ms: unknown): void {
        this.request.timeoutMs = Number(ms);
      }
      setRequestHeader(name: unknown, value: unknown): void {
        this.request.headers[String(name)] = String(value);
      }
      setRequestBody(body: unknown): void {
        this.request.body = String(body);
      }
      executeAsync(): Record<string, never> {
        outbound.push({ ...this.request, headers: { ...this.request.headers } });
        return {};
      }
    }
    return vm.createContext({
      current,
      previous,
      gs,
      GlideDigest,
      GlideDateTime,
      GlideCertificateEncryption,
      GlideStringUtil,
      sn_ws: { RESTMessageV2 },
    });
  }

  function run(rule: InstallKitRule, context: vm.Context): void {
    try {
      rule.script.runInContext(context, { timeout: RULE_TIMEOUT_MS });
    } catch (err) {
      // ServiceNow logs a failing rule and carries on; the simulator fails the request so that a broken script shows.
      opts.log({ level: 'error', message: err instanceof Error ? err.message : String(err), source: rule.name });
      throw new Error(`business rule '${rule.name}' (${rule.file}) failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  function applicable(when: 'before' | 'after', operation: 'insert' | 'update') {
    return opts.rules.filter((r) => r.when === when && (operation === 'insert' ? r.insert : r.update) && (opts.isActive?.(r) ?? true));
  }

  return {
    /** Runs the before rules in order on `current`, which they may change; reports an abort instead of throwing. */
    runBefore(operation: 'insert' | 'update', current: Row, previous: Row | undefined): BeforeResult {
      const errorMessages: string[] = [];
      const action = { aborted: false };
      let abortedBy: InstallKitRule | undefined;
      // Later rules still run after an abort (ServiceNow does not stop the chain); the first rule to abort is named.
      for (const rule of applicable('before', operation)) {
        if (!rule.matches(current, previous)) continue;
        const prev = previous ? glideRecord({ ...previous }, previous) : null;
        run(rule, sandbox(rule, glideRecord(current, previous, action), prev, [], errorMessages));
        if (action.aborted && !abortedBy) abortedBy = rule;
      }
      return { abortedBy: action.aborted ? abortedBy : undefined, errorMessages };
    },

    /** Runs the after rules on the saved record (changes to it are not saved) and returns what they queued to send. */
    runAfter(operation: 'insert' | 'update', saved: Row, previous: Row | undefined): OutboundRequest[] {
      const outbound: OutboundRequest[] = [];
      for (const rule of applicable('after', operation)) {
        if (!rule.matches(saved, previous)) continue;
        const prev = previous ? glideRecord({ ...previous }, previous) : null;
        run(rule, sandbox(rule, glideRecord({ ...saved }, previous), prev, outbound, []));
      }
      return outbound;
    },
  };
}
