/**
 * OpenClaw gateways: where an organization's agents run, and the one device identity this
 * deployment presents to them. Tokens and keys are AES-GCM ciphertext (lib/secret-box.ts).
 */
import { boolean, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { organizations } from './schema';

const createdAt = timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

export const gateways = pgTable(
  'gateways',
  {
    /** Chosen by the Worker: it is bound into the token's ciphertext before the row exists. */
    id: uuid('id').primaryKey(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** `wss://…` (or `ws://` on loopback/private networks); no credentials, no fragment. */
    url: text('url').notNull(),
    tokenCiphertext: text('token_ciphertext'),
    /** Where agent workspaces go on the gateway host; null: the gateway's own default. */
    workspaceRoot: text('workspace_root'),
    allowInsecureTls: boolean('allow_insecure_tls').notNull().default(false),
    /** Issued by the gateway once its owner approved this deployment's device. */
    deviceTokenCiphertext: text('device_token_ciphertext'),
    createdAt,
    updatedAt,
  },
  (t) => [uniqueIndex('gateways_org_name_idx').on(t.organizationId, t.name)],
);

/**
 * The deployment's Ed25519 device key (one row, id `default`). Gateways that require device auth
 * pair with its id, the SHA-256 of the raw public key.
 */
export const deviceIdentity = pgTable('device_identity', {
  id: text('id').primaryKey(),
  deviceId: text('device_id').notNull(),
  /** Raw 32-byte public key, base64url. */
  publicKey: text('public_key').notNull(),
  /** PKCS#8 private key, sealed. */
  privateKeyCiphertext: text('private_key_ciphertext').notNull(),
  createdAt,
});
