import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { slackReceiver } from './receivers/slack.js';
import { Secret, secret } from './secret.js';

describe('Secret', () => {
  it('never prints its value, only reveal() returns it', () => {
    const s = new Secret('https://hooks.slack.com/services/T/B/XYZ');
    expect(String(s)).toBe('[secret]');
    expect(`${s}`).toBe('[secret]');
    expect(JSON.stringify({ url: s })).toBe('{"url":"[secret]"}');
    expect(inspect({ url: s })).toBe('{ url: [secret] }');
    expect(s.reveal()).toBe('https://hooks.slack.com/services/T/B/XYZ');
    expect(secret(s)).toBe(s);
    expect(() => new Secret('')).toThrow(TypeError);
  });

  it('a receiver holds its URL out of sight', () => {
    const receiver = slackReceiver({ name: 'slack', url: 'https://hooks.slack.com/services/T/B/XYZ' });
    expect(inspect(receiver, { depth: 10 }) + JSON.stringify(receiver)).not.toContain('XYZ');
  });
});
