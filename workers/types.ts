import type { Principal } from './auth/principal';
import type { LoadedSettings, Settings } from './config';
import type { Database } from './db/client';
import type { AuditContext } from './services/audit';

/** Per-request variables the middleware set, typed for every handler. */
export interface AppVariables {
  requestId: string;
  loaded: LoadedSettings;
  /** Set once the settings are known to be valid (every route but /healthz and /readyz). */
  settings: Settings;
  /** Set by `authenticate()` on every non-public /api/v1 route. */
  principal: Principal;
  db: Database;
  audit: AuditContext;
  /** True once the handler wrote its audit row; otherwise a failed mutation is audited for it. */
  audited: boolean;
  /** Emergency shutdown is on: only platform admins get past authentication. */
  shutdown: boolean;
}

export interface AppEnv {
  Bindings: Env;
  Variables: AppVariables;
}
