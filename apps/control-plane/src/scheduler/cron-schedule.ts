import { CronExpressionParser, type CronExpression } from 'cron-parser';

/**
 * Policy schedules: 5-field cron expressions evaluated in an IANA time zone (docs/fleet.md §5).
 *
 * Daylight-saving rules, on top of cron-parser's own arithmetic:
 * - a slot inside a spring-forward gap (02:30 when 02:00-03:00 does not exist) runs at the next
 *   valid time, the transition instant (03:00), not an hour late as cron-parser would place it;
 *   when the expression also fires at a valid time inside the shifted hour, the two are one slot;
 * - a wall-clock time repeated by a fall-back transition runs once (its first occurrence) when
 *   the expression names the hour; an expression firing every hour (`*` or a step over all hours)
 *   keeps firing every real hour, as Vixie cron does, so an hourly RPO is not broken twice a year.
 */
export interface ScheduleProblem {
  path: 'schedule' | 'timezone';
  message: string;
}

const FIELDS = 5;
/** how far back from a gap-shifted slot the transition is searched (gaps are at most 2 h) */
const GAP_SEARCH_MS = 6 * 3_600_000;
/** bounds the loop over gap-shifted candidates that fall at or before `after` */
const MAX_CANDIDATES = 1000;

/** Validates a schedule and zone; an empty list means usable. */
export function scheduleProblems(schedule: string, timezone: string): ScheduleProblem[] {
  const problems: ScheduleProblem[] = [];
  if (!isTimeZone(timezone)) problems.push({ path: 'timezone', message: `"${timezone}" is not an IANA time zone: use a name like "Europe/Berlin" or "UTC"` });
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== FIELDS || schedule.trim().startsWith('@')) {
    problems.push({ path: 'schedule', message: 'a schedule is a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. "0 2 * * *"' });
    return problems;
  }
  try {
    CronExpressionParser.parse(schedule, { strict: false });
  } catch (err) {
    problems.push({ path: 'schedule', message: `not a valid cron expression: ${(err as Error).message}` });
  }
  return problems;
}

export function isTimeZone(timezone: string): boolean {
  if (timezone.trim() === '' || timezone.length > 64) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/** The first slot strictly after `after`, in `timezone`. The schedule must be valid. */
export function nextSlot(schedule: string, timezone: string, after: Date): Date {
  const expression = parse(schedule, timezone, after);
  for (let i = 0; i < MAX_CANDIDATES; i++) {
    const raw = expression.next().toDate();
    const slot = expression.includesDate(raw) ? raw : gapTransition(raw, timezone);
    if (slot.getTime() > after.getTime()) return slot;
  }
  throw new Error(`no slot of "${schedule}" (${timezone}) found after ${after.toISOString()}`);
}

/** Slots in (after, until], at most `limit` of them (previews, counting missed runs). */
export function slotsBetween(schedule: string, timezone: string, after: Date, until: Date, limit: number): Date[] {
  const slots: Date[] = [];
  let cursor = after;
  while (slots.length < limit) {
    const slot = nextSlot(schedule, timezone, cursor);
    if (slot.getTime() > until.getTime()) break;
    slots.push(slot);
    cursor = slot;
  }
  return slots;
}

function parse(schedule: string, timezone: string, after: Date): CronExpression {
  return CronExpressionParser.parse(schedule, { currentDate: after, tz: timezone });
}

/**
 * cron-parser moves a slot inside a spring-forward gap forward by the gap's length. The slot's
 * next valid time is the transition itself: the instant from which the zone's offset is the one
 * in force at `shifted`. Found by bisection over whole minutes (tzdata transitions are on them).
 */
function gapTransition(shifted: Date, timezone: string): Date {
  const offsetAfter = offsetMinutes(shifted, timezone);
  let lo = shifted.getTime() - GAP_SEARCH_MS;
  if (offsetMinutes(new Date(lo), timezone) === offsetAfter) return shifted;
  let hi = shifted.getTime();
  while (hi - lo > 60_000) {
    const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
    if (offsetMinutes(new Date(mid), timezone) === offsetAfter) hi = mid;
    else lo = mid;
  }
  return new Date(hi);
}

const offsetFormats = new Map<string, Intl.DateTimeFormat>();

/** The zone's UTC offset at `date`, in minutes. */
export function offsetMinutes(date: Date, timezone: string): number {
  let format = offsetFormats.get(timezone);
  if (format == null) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    offsetFormats.set(timezone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(date).map((p) => [p.type, p.value]));
  const asUtc = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60_000);
}
