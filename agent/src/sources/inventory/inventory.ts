/**
 * `inventory`: collects host tables (users, logins, processes, listening_ports,
 * packages, os), each on its own cron schedule (node-cron, never overlapping with
 * itself), and reports differences as osquery does: `inventory.<table>.added`,
 * `.removed` and `.changed` against the last snapshot, kept in the journal's
 * LevelDB (state namespace `inv/<source>/<table>`, one entry per row) and written
 * in the same batch as the events. A table's first run seals the whole table as
 * `inventory.<table>.snapshot` events (chunked to stay under the event size cap).
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { StateWrite } from '../../journal/journal.js';
import { type EventDraft, EventEncoder } from '../common/emit.js';
import { counter } from '../common/metrics.js';
import type { Source, SourceFactory, SourceSettings } from '../source.js';
import {
  type Collector,
  type CollectorOptions,
  defaultCollectors,
  type Row,
  type Rows,
} from './collectors.js';
import {
  INVENTORY_TABLES,
  type InventoryConfig,
  type InventoryTable,
  inventoryConfigSchema,
} from './config.js';

interface Position {
  version: 1;
  /** Tables whose first snapshot is sealed. */
  initialized: InventoryTable[];
}

export interface InventoryOptions {
  /** The clock events are stamped with (tests use a fake one). */
  now?: () => Date;
  collectors?: Partial<Record<InventoryTable, Collector>>;
  collectorOptions?: CollectorOptions;
}

const CATEGORY: Record<InventoryTable, EventDraft['category']> = {
  users: 'account',
  logins: 'authentication',
  processes: 'process',
  listening_ports: 'network',
  packages: 'configuration',
  os: 'system',
};

function describeRow(table: InventoryTable, row: Row): { kind: string; name: string } {
  switch (table) {
    case 'users':
      return { kind: String(row.kind ?? 'user'), name: String(row.name) };
    case 'logins':
      return { kind: 'session', name: `${row.user}@${row.tty}` };
    case 'processes':
      return { kind: 'process', name: String(row.name) };
    case 'listening_ports':
      return { kind: 'port', name: `${row.protocol}/${row.address}:${row.port}` };
    case 'packages':
      return { kind: 'package', name: String(row.name) };
    case 'os':
      return { kind: 'os', name: `${row.distro} ${row.release}`.trim() };
  }
}

function severity(table: InventoryTable, change: 'added' | 'removed' | 'changed'): EventDraft['severity'] {
  if (table === 'users' || (table === 'listening_ports' && change === 'added')) return 'medium';
  if (table === 'packages' || table === 'os' || table === 'listening_ports') return 'low';
  return 'info';
}

const same = (a: Row, b: Row) => JSON.stringify(a) === JSON.stringify(b);

export class Inventory implements Source {
  private readonly encoder: EventEncoder;
  private readonly collectors: Record<InventoryTable, Collector>;
  private readonly snapshots = new Map<InventoryTable, Rows>();
  private initialized = new Set<InventoryTable>();
  private readonly running = new Map<InventoryTable, Promise<void>>();
  private tasks: ScheduledTask[] = [];
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private readonly now: () => Date;
  private readonly runs;
  private readonly unavailable = new Set<InventoryTable>();

  constructor(
    private readonly settings: SourceSettings,
    private readonly config: InventoryConfig,
    opts: InventoryOptions = {},
  ) {
    this.encoder = new EventEncoder(settings, 'inventory', config.name, config.redact);
    this.collectors = { ...defaultCollectors(opts.collectorOptions), ...opts.collectors };
    this.now = opts.now ?? (() => new Date());
    this.runs = counter(settings.registry, {
      name: 'sealtrail_inventory_runs_total',
      help: 'Inventory table collections, by outcome (ok, error, skipped_overlap, unavailable)',
      labelNames: ['source', 'table', 'outcome'],
    });
  }

  get name(): string {
    return this.config.name;
  }

  private ns(table: InventoryTable): string {
    return `inv/${this.config.name}/${table}`;
  }

  private enabled(): InventoryTable[] {
    return INVENTORY_TABLES.filter((t) => this.config.tables[t].enabled);
  }

  async start(): Promise<void> {
    const { journal } = this.settings;
    const pos = await journal.position<Position>(this.config.name);
    this.initialized = new Set(pos?.initialized ?? []);
    for (const table of this.enabled()) {
      const rows: Rows = new Map();
      for await (const [k, v] of journal.stateEntries<Row>(this.ns(table))) rows.set(k, v);
      this.snapshots.set(table, rows);
      const opts = {
        name: `${this.config.name}:${table}`,
        noOverlap: true,
        ...(this.config.timezone ? { timezone: this.config.timezone } : {}),
      };
      this.tasks.push(cron.schedule(this.config.tables[table].schedule, () => this.collect(table), opts));
    }
    if (this.config.run_on_start) for (const t of this.enabled()) void this.collect(t);
  }

  /** Collects one table now and seals the differences; a run already going for that table is not doubled. */
  collect(table: InventoryTable): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const current = this.running.get(table);
    if (current) {
      this.runs.inc({ source: this.config.name, table, outcome: 'skipped_overlap' });
      return current;
    }
    const run = this.collectOnce(table)
      .catch((err) => {
        this.runs.inc({ source: this.config.name, table, outcome: 'error' });
        this.settings.log.warn({ err, table }, 'inventory collection failed');
      })
      .finally(() => this.running.delete(table));
    this.running.set(table, run);
    return run;
  }

  private async collectOnce(table: InventoryTable): Promise<void> {
    const rows = await this.collectors[table]();
    if (this.stopped) return;
    if (rows === null) {
      this.runs.inc({ source: this.config.name, table, outcome: 'unavailable' });
      if (!this.unavailable.has(table)) {
        this.unavailable.add(table);
        this.settings.log.info({ table }, 'inventory table not available on this host');
      }
      return;
    }
    const now = this.now();
    const old = this.snapshots.get(table) ?? new Map<string, Row>();
    const drafts: EventDraft[] = [];
    const state: StateWrite[] = [];
    const ns = this.ns(table);
    const first = !this.initialized.has(table);
    if (first) {
      // Chunks by row count and by size, so each event stays well under the size cap.
      const budget = Math.floor(this.settings.maxEventBytes / 2);
      const parts: Row[][] = [[]];
      let bytes = 0;
      for (const r of rows.values()) {
        const size = JSON.stringify(r).length + 1;
        const cur = parts[parts.length - 1]!;
        if (cur.length > 0 && (cur.length >= this.config.snapshot_rows_per_event || bytes + size > budget)) {
          parts.push([r]);
          bytes = size;
        } else {
          cur.push(r);
          bytes += size;
        }
      }
      parts.forEach((part, i) => {
        drafts.push({
          category: CATEGORY[table],
          type: `inventory.${table}.snapshot`,
          action: 'snapshot',
          outcome: 'success',
          message: `${table} snapshot, ${rows.size} rows${parts.length > 1 ? ` (part ${i + 1} of ${parts.length})` : ''}`,
          attributes: { table, part: i + 1, parts: parts.length, total_rows: rows.size, rows: part },
        });
      });
      for (const k of old.keys()) if (!rows.has(k)) state.push({ ns, key: k, value: null });
      for (const [k, r] of rows) state.push({ ns, key: k, value: r });
    } else {
      for (const [k, r] of rows) {
        const before = old.get(k);
        if (!before) {
          drafts.push(this.change(table, 'added', k, { row: r }, r));
          state.push({ ns, key: k, value: r });
        } else if (!same(before, r)) {
          drafts.push(this.change(table, 'changed', k, { before, after: r }, r));
          state.push({ ns, key: k, value: r });
        }
      }
      for (const [k, r] of old) {
        if (!rows.has(k)) {
          drafts.push(this.change(table, 'removed', k, { row: r }, r));
          state.push({ ns, key: k, value: null });
        }
      }
    }
    if (drafts.length === 0 && state.length === 0 && !first) {
      this.runs.inc({ source: this.config.name, table, outcome: 'ok' });
      return;
    }
    const initialized = new Set(this.initialized).add(table);
    const position: Position = { version: 1, initialized: [...initialized].sort() };
    await this.settings.journal.append({
      events: drafts.map((d) => this.encoder.encode(d, now)),
      state,
      positions: { [this.config.name]: position },
    });
    this.initialized = initialized;
    this.snapshots.set(table, rows);
    this.runs.inc({ source: this.config.name, table, outcome: 'ok' });
  }

  private change(
    table: InventoryTable,
    change: 'added' | 'removed' | 'changed',
    key: string,
    attrs: Record<string, unknown>,
    row: Row,
  ): EventDraft {
    const r = describeRow(table, row);
    const verb = { added: 'add', removed: 'remove', changed: 'change' }[change];
    return {
      category: CATEGORY[table],
      type: `inventory.${table}.${change}`,
      action: verb,
      outcome: 'success',
      severity: severity(table, change),
      resource: { kind: r.kind, name: r.name, id: key },
      message: `${table}: ${r.kind} ${r.name} ${change}`,
      attributes: { table, key, ...attrs },
    };
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      await Promise.allSettled(this.tasks.map((t) => t.destroy()));
      this.tasks = [];
      await Promise.allSettled([...this.running.values()]);
    })();
    return this.stopping;
  }
}

export const inventorySource: SourceFactory<InventoryConfig> = {
  type: 'inventory',
  configSchema: inventoryConfigSchema,
  create: (settings, config) => new Inventory(settings, config),
};
