import { Writable } from 'node:stream';
import { createLogger } from '../src/logger';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('structured logger', () => {
  test('one JSON line per event with level, component, message and fields', () => {
    const out = capture();
    createLogger('api', 'info', out.stream).info('delivery accepted', { ticket: 'CHG0030001', actions: 2 });
    expect(out.lines()).toEqual([expect.objectContaining({ level: 'info', component: 'api', msg: 'delivery accepted', ticket: 'CHG0030001', actions: 2 })]);
  });

  test('events below the configured level are dropped', () => {
    const out = capture();
    const log = createLogger('worker', 'warn', out.stream);
    log.info('not shown');
    log.debug('not shown either');
    log.warn('shown');
    expect(out.lines().map((l) => l.msg)).toEqual(['shown']);
  });

  test('a field under a secret-like name is redacted at the top level and nested, as a second guard', () => {
    const out = capture();
    createLogger('api', 'info', out.stream).warn('request refused', {
      password: 'hunter2-top',
      headers: { authorization: 'Bearer abc.def.ghi' },
      target: { token: 'tok-nested-value', name: 'kept' },
      deeper: { conn: { secret: 'deep-secret-value' } },
    });
    const line = JSON.stringify(out.lines()[0]);
    for (const value of ['hunter2-top', 'abc.def.ghi', 'tok-nested-value', 'deep-secret-value']) expect(line).not.toContain(value);
    expect(out.lines()[0]).toMatchObject({ password: '[redacted]', target: { token: '[redacted]', name: 'kept' } });
  });

  test('a child logger keeps its parent component and names its part', () => {
    const out = capture();
    createLogger('worker', 'info', out.stream).child('temporal').info('worker state changed');
    expect(out.lines()[0]).toMatchObject({ component: 'worker', sub: 'temporal', msg: 'worker state changed' });
  });
});
