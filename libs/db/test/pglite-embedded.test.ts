import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { Database, organizations, resultRows, users } from '../src/index.ts';

// Embedded mode: PGlite's only session is a superuser, so Database.open switches it to arca_app
// after migrating. This proves RLS holds there too.
describe('embedded PGlite', () => {
  it('migrates, drops to arca_app and enforces row-level security', async () => {
    const db = await Database.open({ kind: 'pglite', migrate: true });
    try {
      expect(await db.sql.query('SELECT current_user AS role')).toEqual([{ role: 'arca_app' }]);
      await db.assertRuntimeRoleEnforcesRls();
      const [a, b] = [randomUUID(), randomUUID()];
      for (const org of [a, b]) {
        await db.withTenant(org, async (tx) => {
          await tx.insert(organizations).values({ id: org, name: `org ${org.slice(0, 4)}` });
          await tx.insert(users).values({ orgId: org, id: randomUUID(), email: `u@${org}.test`, displayName: 'U' });
        });
      }
      const rows = await db.withTenant(a, async (tx) => resultRows<{ org_id: string }>(await tx.execute(sql.raw('SELECT org_id FROM users'))));
      expect(rows).toEqual([{ org_id: a }]);
      expect(await db.sql.query('SELECT * FROM organizations')).toEqual([]);
    } finally {
      await db.close();
    }
  });
});
