/** `mce emergency-shutdown on|off|status`: the deployment-wide switch, flipped through the running Worker's admin API. */
import { apiTargetHelp, createApiClient } from '../lib/api-client.ts';
import { CliError, type Output } from '../lib/output.ts';

const USAGE = 'mce emergency-shutdown on|off|status [--reason TEXT] [--url URL]';
const PATH = '/api/v1/admin/emergency-shutdown';

export const emergencyShutdownHelp = `${USAGE}
  Turns the emergency switch on or off, or shows it. While on, every request but health checks
  and platform admins gets 503 (every Worker isolate within about 5 s). --reason is recorded with the change.
  ${apiTargetHelp.replaceAll('\n', '\n  ')}`;

interface ShutdownState {
  enabled: boolean;
  reason: string | null;
  updated_by: string | null;
  updated_at: string | null;
}

export interface EmergencyShutdownOptions {
  args: string[];
  reason?: string;
  url?: string;
  port?: number;
}

function describe(state: ShutdownState, changed: boolean): string {
  const lines = [
    state.enabled
      ? `Emergency shutdown is ${changed ? 'now ' : ''}ON: every request but health checks and platform admins gets 503.`
      : `Emergency shutdown is ${changed ? 'now ' : ''}OFF: the service answers normally.`,
  ];
  if (state.reason) lines.push(`  Reason: ${state.reason}`);
  if (state.updated_at) lines.push(`  Last changed by ${state.updated_by ?? 'unknown'} at ${state.updated_at}`);
  // The Worker caches the flag per isolate, so a change is not everywhere at the same instant.
  if (changed) lines.push('  Every Worker isolate follows within about 5 s.');
  return lines.join('\n');
}

export async function emergencyShutdownCommand(out: Output, options: EmergencyShutdownOptions): Promise<void> {
  const [action, ...extra] = options.args;
  if ((action !== 'on' && action !== 'off' && action !== 'status') || extra.length > 0) {
    throw new CliError(`usage: ${USAGE}`);
  }
  if (action === 'status' && options.reason !== undefined) throw new CliError('--reason goes with on or off');

  const api = createApiClient(options);
  const state =
    action === 'status'
      ? await api.get<ShutdownState>(PATH)
      : await api.post<ShutdownState>(PATH, {
          enabled: action === 'on',
          ...(options.reason === undefined ? {} : { reason: options.reason }),
        });
  out.result(describe(state, action !== 'status'), state);
}
