import { expect, it } from 'vitest';
import { service } from './services.js';

it('probes the services the integration tests need', async () => {
  for (const name of ['redis', 'postgres', 'chromium'] as const) {
    const found = await service(name);
    expect(found.name).toBe(name);
    expect(found.available).toBe(found.reason === '');
    if (process.env.CI === 'true') expect(found.reason).toBe('');
  }
});
