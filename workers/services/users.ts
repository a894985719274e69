/** Operators' own profile. Users are provisioned on first sight by the auth layer, not here. */
import { asc, eq, sql } from 'drizzle-orm';
import type { Role } from '../auth/principal';
import type { Database } from '../db/client';
import { fromRow } from '../db/rows';
import { organizationMembers, organizations, users } from '../db/schema';
import { AppError } from '../lib/errors';
import { type AuditContext, mutateWithAudit } from './audit';
import type { OrganizationWithRole } from './organizations';

export type User = typeof users.$inferSelect;

export async function getUser(db: Database, userId: string): Promise<User> {
  const [user] = await db.select().from(users).where(eq(users.id, userId));
  if (!user) throw new AppError(404, 'not_found', 'No such user.');
  return user;
}

/** What the dashboard needs on start: who I am and where I can act. */
export async function bootstrap(
  db: Database,
  userId: string,
): Promise<{ user: User; organizations: OrganizationWithRole[] }> {
  // One round trip for both.
  const [[user], orgs] = await db.batch([
    db.select().from(users).where(eq(users.id, userId)),
    db
      .select({ organization: organizations, role: organizationMembers.role })
      .from(organizationMembers)
      .innerJoin(organizations, eq(organizations.id, organizationMembers.organizationId))
      .where(eq(organizationMembers.userId, userId))
      .orderBy(asc(organizations.createdAt), asc(organizations.id)),
  ]);
  if (!user) throw new AppError(404, 'not_found', 'No such user.');
  return { user, organizations: orgs.map((o) => ({ organization: o.organization, role: o.role as Role })) };
}

export interface UserPatch {
  name?: string | null;
  email?: string | null;
}

export async function updateUser(db: Database, ctx: AuditContext, userId: string, patch: UserPatch): Promise<User> {
  const update = db
    .update(users)
    .set({
      updatedAt: sql`now()`,
      ...(patch.name !== undefined && { name: patch.name }),
      ...(patch.email !== undefined && { email: patch.email }),
    })
    .where(eq(users.id, userId))
    .returning();
  const [row] = await mutateWithAudit(
    db,
    ctx,
    // Which fields changed, not their values: the audit log outlives a profile's personal data.
    {
      action: 'user.update',
      targetType: 'user',
      details: {
        fields: Object.keys(patch)
          .filter((k) => patch[k as keyof UserPatch] !== undefined)
          .sort(),
      },
    },
    update,
  );
  if (!row) throw new AppError(404, 'not_found', 'No such user.');
  return fromRow(users, row);
}
