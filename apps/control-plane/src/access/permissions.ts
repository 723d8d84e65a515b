/**
 * The RBAC vocabulary: actions, subject types, label keys and the built-in roles' rules. Custom
 * roles store rules of the same shape (roles.permissions). Subjects that have no GraphQL API yet
 * (Agent, Store, Resource, Policy, Job) are listed so custom roles can already name them; they are
 * the ones that carry labels.
 */
export const ACTIONS = ['manage', 'read', 'create', 'update', 'delete', 'verify'] as const;
export type Action = (typeof ACTIONS)[number];

export const SUBJECTS = [
  'all', 'Organization', 'User', 'Membership', 'Role', 'ApiToken', 'AuditEvent', 'Invitation', 'Agent', 'Store', 'Resource', 'Policy', 'Job',
] as const;
export type SubjectType = (typeof SUBJECTS)[number];

/** Labels a permission may be conditioned on (resource labels, matched by exact value). */
export const LABEL_KEYS = ['environment', 'perimeter'] as const;
export type LabelKey = (typeof LABEL_KEYS)[number];

export const BUILTIN_ROLES = ['owner', 'admin', 'operator', 'auditor', 'viewer'] as const;
export type BuiltinRole = (typeof BUILTIN_ROLES)[number];

export interface PermissionRule {
  action: Action;
  subject: SubjectType;
  /** only resources whose labels match: every listed key must have one of the listed values */
  labels?: Partial<Record<LabelKey, string[]>>;
  /** only the caller's own objects (objects whose userId is the caller) */
  own?: boolean;
  /** a `cannot` rule: removes what earlier rules allowed */
  inverted?: boolean;
}

const FLEET: SubjectType[] = ['Agent', 'Store', 'Resource', 'Policy', 'Job'];
const DIRECTORY: SubjectType[] = ['Organization', 'User', 'Membership', 'Role'];
const read = (subjects: SubjectType[]): PermissionRule[] => subjects.map((subject) => ({ action: 'read', subject }));
const ownTokens: PermissionRule[] = [
  { action: 'read', subject: 'ApiToken', own: true },
  { action: 'create', subject: 'ApiToken', own: true },
  { action: 'delete', subject: 'ApiToken', own: true },
];

/**
 * Built-in roles. Their rules live here, not in the database, so an upgrade can refine them.
 * - owner: everything, including the organization itself and granting the owner role.
 * - admin: runs the organization (people, invitations, roles, tokens, fleet) but cannot change the
 *   organization's settings or grant/remove the owner role (checked in MembershipService).
 * - operator: runs the fleet (agents, stores, policies, jobs); reads the directory; own tokens.
 * - auditor: reads everything including the audit log and verifies it; changes nothing but
 *   their own tokens (an integration exporting evidence needs one).
 * - viewer: reads the directory and the fleet.
 */
export const BUILTIN_ROLE_RULES: Record<BuiltinRole, readonly PermissionRule[]> = {
  owner: [{ action: 'manage', subject: 'all' }],
  admin: [
    { action: 'manage', subject: 'all' },
    { action: 'update', subject: 'Organization', inverted: true },
    { action: 'delete', subject: 'Organization', inverted: true },
  ],
  operator: [...read(DIRECTORY), ...FLEET.map((subject): PermissionRule => ({ action: 'manage', subject })), ...ownTokens],
  auditor: [
    ...read([...DIRECTORY, ...FLEET, 'ApiToken', 'AuditEvent', 'Invitation']),
    { action: 'verify', subject: 'AuditEvent' },
    ...ownTokens.filter((r) => r.action !== 'read'),
  ],
  viewer: read([...DIRECTORY, ...FLEET]),
};

export function isBuiltinRole(name: string): name is BuiltinRole {
  return (BUILTIN_ROLES as readonly string[]).includes(name);
}

/** A token scope is "action:Subject" (e.g. "read:AuditEvent"), or "*" for everything the user may do. */
export type Scope = '*' | `${Action}:${SubjectType}`;

export function isScope(value: string): value is Scope {
  if (value === '*') return true;
  const [action, subject, extra] = value.split(':');
  return extra === undefined && (ACTIONS as readonly string[]).includes(action ?? '') && (SUBJECTS as readonly string[]).includes(subject ?? '');
}
