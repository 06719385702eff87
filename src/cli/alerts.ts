/**
 * `bulwark alerts check FILE`: validates an alert config file (secrets from the environment) and prints
 * what it defines, or every problem as `file:line:column: path: message`. Exit 0 when valid, 2 otherwise.
 */
import { AlertConfigError, loadAlertConfig } from '../monitor/alerts/config.js';
import { type CommandIO, parseFlags, UsageError } from './io.js';

const HELP = `Usage: bulwark alerts check FILE

Validates an alert config file: its YAML, every rule, receiver, route and inhibition rule, and that the
environment variables it names for secrets (urlEnv, passwordEnv, bearerTokenEnv) are set. Prints the
rules and receivers it defines (never a secret), or each problem as file:line:column: field: message.

Exit code: 0 when the file is valid, 2 otherwise.
`;

/** `bulwark alerts …`; returns the exit code. Throws {@link UsageError} on bad input. */
export async function alertsCommand(
  argv: readonly string[],
  io: CommandIO,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  const { values, positionals } = parseFlags('alerts', argv, {
    help: { type: 'boolean', short: 'h', default: false },
  });
  const [action, ...rest] = positionals;
  if (values.help || action === undefined) {
    io.out(HELP);
    return values.help ? 0 : 2;
  }
  if (action !== 'check') throw new UsageError(`alerts: unknown action "${action}" (check)`);
  if (rest.length !== 1) throw new UsageError(`alerts: check needs one config file, got ${rest.length}`);
  const file = rest[0] as string;
  try {
    const config = await loadAlertConfig(file, env);
    for (const receiver of config.receivers) (receiver as { close?: () => void }).close?.();
    const rules = config.rules.map((r) => `${r.name} (${r.kind})`);
    io.out(
      `${file} is valid: ${rules.length} rule${rules.length === 1 ? '' : 's'}${rules.length > 0 ? `: ${rules.join(', ')}` : ''}; ` +
        `receivers: ${config.receivers.map((r) => r.name).join(', ')}; store: ${config.store ?? 'in memory (nothing survives a restart)'}\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof AlertConfigError) {
      io.err(`${error.problems.map((p) => `bulwark: ${p}`).join('\n')}\n`);
      return 2;
    }
    throw error;
  }
}
