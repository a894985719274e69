import type { LoadedSettings, Settings } from './config';

/** Per-request variables the middleware set, typed for every handler. */
export interface AppVariables {
  requestId: string;
  loaded: LoadedSettings;
  /** Set once the settings are known to be valid (every route but /healthz and /readyz). */
  settings: Settings;
}

export interface AppEnv {
  Bindings: Env;
  Variables: AppVariables;
}
