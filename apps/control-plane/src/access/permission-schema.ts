import { z } from 'zod';
import type { RoleRow } from '@arca/db';
import { ACTIONS, BUILTIN_ROLE_RULES, isBuiltinRole, LABEL_KEYS, SUBJECTS, type PermissionRule } from './permissions.ts';

const labelValue = z.string().min(1).max(63).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'label values are letters, digits, ".", "_" and "-"');

/** One rule of a custom role, as accepted from the API and stored in roles.permissions. */
export const permissionRuleSchema = z.strictObject({
  action: z.enum(ACTIONS),
  subject: z.enum(SUBJECTS),
  labels: z.partialRecord(z.enum(LABEL_KEYS), z.array(labelValue).min(1).max(50)).optional(),
});

export const customRulesSchema = z.array(permissionRuleSchema).max(100);

/** The rules a role grants: built-in roles from code, custom roles from their stored rules. */
export function rulesOfRole(role: Pick<RoleRow, 'name' | 'builtin' | 'permissions'>): readonly PermissionRule[] {
  if (role.builtin) return isBuiltinRole(role.name) ? BUILTIN_ROLE_RULES[role.name] : [];
  // stored rules were validated on write; parse again so a hand-edited row cannot widen access
  const parsed = customRulesSchema.safeParse(role.permissions);
  return parsed.success ? (parsed.data as PermissionRule[]) : [];
}
