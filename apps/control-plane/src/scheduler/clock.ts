/** The time, injectable so scheduler tests move it instead of waiting (CLOCK provider). */
export interface Clock {
  now(): Date;
}

export const CLOCK = Symbol('arca:clock');

export const systemClock: Clock = { now: () => new Date() };
