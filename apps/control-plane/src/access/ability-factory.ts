import { createMongoAbility, type MongoAbility, type RawRuleOf } from '@casl/ability';
import { ACTIONS, SUBJECTS, type Action, type PermissionRule, type Scope, type SubjectType } from './permissions.ts';

export type AppAbility = MongoAbility<[Action, SubjectType | Record<string, unknown>]>;
type AppRawRule = RawRuleOf<AppAbility>;

const CONCRETE_ACTIONS = ACTIONS.filter((a) => a !== 'manage');
const CONCRETE_SUBJECTS = SUBJECTS.filter((s) => s !== 'all');

/**
 * Builds the CASL ability of one caller from their role's rules, narrowed by an API token's
 * scopes when the caller authenticated with one (the token can never do more than its user).
 */
export function buildAbility(input: { userId: string; rules: readonly PermissionRule[]; scopes?: readonly string[] }): AppAbility {
  const scoped = input.scopes == null || input.scopes.includes('*') ? input.rules : narrowToScopes(input.rules, input.scopes as Scope[]);
  return createMongoAbility<AppAbility>(scoped.map((rule) => toCaslRule(rule, input.userId)));
}

function toCaslRule(rule: PermissionRule, userId: string): AppRawRule {
  const conditions: Record<string, unknown> = {};
  for (const [key, values] of Object.entries(rule.labels ?? {})) conditions[`labels.${key}`] = { $in: values };
  if (rule.own === true) conditions.userId = userId;
  return {
    action: rule.action,
    subject: rule.subject,
    ...(Object.keys(conditions).length > 0 ? { conditions } : {}),
    ...(rule.inverted === true ? { inverted: true } : {}),
  } as AppRawRule;
}

/**
 * Intersects rules with scopes: `manage`/`all` are expanded to concrete pairs and only the pairs
 * a scope names survive (with their conditions). Inverted rules are kept: they only take away.
 */
function narrowToScopes(rules: readonly PermissionRule[], scopes: readonly Scope[]): PermissionRule[] {
  const allowed = new Set<string>(scopes);
  const out: PermissionRule[] = [];
  for (const rule of rules) {
    if (rule.inverted === true) {
      out.push(rule);
      continue;
    }
    const actions = rule.action === 'manage' ? CONCRETE_ACTIONS : [rule.action];
    const subjects = rule.subject === 'all' ? CONCRETE_SUBJECTS : [rule.subject];
    for (const action of actions) {
      for (const subject of subjects) {
        if (allowed.has(`${action}:${subject}`)) out.push({ ...rule, action, subject });
      }
    }
  }
  return out;
}
