import canonicalize from 'canonicalize';
import { canonicalJson, jcs } from '../src/evidence/canonical-json';

/**
 * Row hashes are over RFC 8785 (JCS) text, so that an auditor can recompute them with any JCS implementation. Checked
 * against the RFC's own examples and against `canonicalize`, a maintained JCS implementation from npm.
 */
describe('evidence rows are hashed over RFC 8785 (JCS)', () => {
  const fromBits = (hex: string) => Buffer.from(hex, 'hex').readDoubleBE(0);

  // RFC 8785 Appendix B: IEEE 754 bit patterns and the text JCS must write for them.
  it.each([
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ])('the number with bits %s is written %s (Appendix B)', (bits, text) => {
    expect(jcs(fromBits(bits))).toBe(text);
  });

  it.each([['7fffffffffffffff'], ['7ff0000000000000'], ['fff0000000000000']])('the non-finite number with bits %s is refused (Appendix B)', (bits) => {
    expect(() => jcs({ n: fromBits(bits) })).toThrow(/\$\.n is (NaN|Infinity|-Infinity), which JSON cannot hold/);
  });

  it('writes the example of §3.2.2 (numbers, string escaping, literals) byte for byte', () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
    );
    expect(jcs(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('sorts keys by UTF-16 code units, the example of §3.2.3 (a supplementary character sorts before U+FB33)', () => {
    const input = JSON.parse('{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}');
    expect(jcs(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\u{1F600}":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('refuses a string or a key with an unpaired surrogate, which JCS cannot write', () => {
    expect(() => jcs({ name: 'a\uD800b' })).toThrow(/\$\.name holds an unpaired UTF-16 surrogate/);
    expect(() => jcs({ list: ['\uDC00'] })).toThrow(/\$\.list\[0\] holds an unpaired UTF-16 surrogate/);
    expect(() => jcs({ ['\uDBFF']: 1 })).toThrow(/a key in \$ holds an unpaired UTF-16 surrogate/);
    expect(jcs({ ok: '\uD83D\uDE00' })).toBe('{"ok":"😀"}');
  });

  it('writes what canonicalize writes, for the RFC examples and for thousands of generated values', () => {
    // A fixed-seed generator: the same values on every run, covering escapes, astral characters, nesting and numbers
    // from every magnitude.
    let seed = 0x2545f491;
    const next = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x1_0000_0000;
    };
    const alphabet = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u0080', 'é', '\u2028', '€', '\ufb33', '\uffff', '\u{1F600}', '\u{10FFFF}'];
    const str = () => Array.from({ length: Math.floor(next() * 6) }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
    const num = () => {
      const bits = Buffer.alloc(8);
      bits.writeUInt32BE(Math.floor(next() * 0x1_0000_0000), 0);
      bits.writeUInt32BE(Math.floor(next() * 0x1_0000_0000), 4);
      const n = bits.readDoubleBE(0);
      return Number.isFinite(n) ? n : Math.floor(next() * 1e6) - 5e5;
    };
    const value = (depth: number): unknown => {
      const pick = Math.floor(next() * (depth > 3 ? 5 : 7));
      if (pick === 0) return null;
      if (pick === 1) return next() < 0.5;
      if (pick === 2) return num();
      if (pick === 3) return str();
      if (pick === 4) return Math.floor(next() * 2000) - 1000;
      if (pick === 5) return Array.from({ length: Math.floor(next() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(next() * 5) }, () => [str(), value(depth + 1)]));
    };
    const samples = [
      JSON.parse('{"numbers":[1E30,4.50,6,2e-3,0.000000000000000000000000001],"escaping":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","other":[null,true,false]}'),
      ...Array.from({ length: 3000 }, () => value(0)),
    ];
    const differing = samples.filter((s) => jcs(s) !== canonicalize(s));
    expect(differing).toEqual([]);
  });

  it('writes integer-like keys in code-unit order, where the key-sorted form used for action ids does not (why rows moved to jcs)', () => {
    const value = { b: 1, '10': 2, '2': 3, a: { '1': true, '': false } };
    expect(jcs(value)).toBe('{"10":2,"2":3,"a":{"":false,"1":true},"b":1}');
    expect(jcs(value)).toBe(canonicalize(value));
    // Unchanged on purpose: action ids are derived from it.
    expect(canonicalJson(value)).toBe('{"2":3,"10":2,"a":{"1":true,"":false},"b":1}');
  });
});
