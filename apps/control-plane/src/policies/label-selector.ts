import { z } from 'zod';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';

/**
 * Labels and label selectors of the fleet (docs/fleet.md §5). Labels are `key -> value`; a
 * selector is `key -> [values]` and matches when every key it lists has one of its values, so
 * an empty selector matches everything (a catch-all policy, usually given a high priority number).
 */
export type Labels = Record<string, string>;
export type LabelSelector = Record<string, string[]>;

export const MAX_LABELS = 50;
const labelKey = z.string().min(1).max(63).regex(/^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?$/, 'label keys are lowercase letters, digits, ".", "_", "/" and "-"');
const labelValue = z.string().min(1).max(63).regex(/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/, 'label values are letters, digits, ".", "_" and "-"');

export const labelsSchema = z.record(labelKey, labelValue).refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);
export const selectorSchema = z.record(labelKey, z.array(labelValue).min(1, 'a selector key needs at least one value').max(50))
  .refine((s) => Object.keys(s).length <= MAX_LABELS, `at most ${MAX_LABELS} selector keys`);

/** GraphQL lists of pairs into maps; a key given twice is an input error, not a silent overwrite. */
export function labelsFromPairs(pairs: ReadonlyArray<{ key: string; value: string }> | null | undefined, path = 'labels'): Record<string, string> | undefined {
  if (pairs == null) return undefined;
  return uniqueEntries(pairs.map((p) => [p.key, p.value]), path);
}

export function selectorFromTerms(terms: ReadonlyArray<{ key: string; values: string[] }> | null | undefined, path = 'selector'): Record<string, string[]> | undefined {
  if (terms == null) return undefined;
  return uniqueEntries(terms.map((t) => [t.key, [...new Set(t.values)]]), path);
}

function uniqueEntries<V>(entries: Array<[string, V]>, path: string): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [key, value] of entries) {
    if (Object.hasOwn(out, key)) {
      const message = `the key "${key}" is given twice: give each key once`;
      throw new ControlPlaneError(ControlPlaneErrorCode.InvalidInput, `invalid input: ${path}: ${message}`, { fields: [{ path, message }] });
    }
    out[key] = value;
  }
  return out;
}

export function labelPairs(labels: Labels): Array<{ key: string; value: string }> {
  return Object.keys(labels).sort().map((key) => ({ key, value: labels[key]! }));
}

export function selectorTerms(selector: LabelSelector): Array<{ key: string; values: string[] }> {
  return Object.keys(selector).sort().map((key) => ({ key, values: [...selector[key]!] }));
}

/** A resource's effective labels: its agent's labels, overlaid by its own. */
export function effectiveLabels(agentLabels: Labels, resourceLabels: Labels): Labels {
  return { ...agentLabels, ...resourceLabels };
}

export function selectorMatches(selector: LabelSelector, labels: Labels): boolean {
  for (const [key, values] of Object.entries(selector)) {
    const value = Object.hasOwn(labels, key) ? labels[key] : undefined;
    if (value === undefined || !values.includes(value)) return false;
  }
  return true;
}
