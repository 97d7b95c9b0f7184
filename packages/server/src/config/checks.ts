// Checks that span fields, run on the file's data as written (so they report even when other
// parts are invalid): group providers name real dependencies, sections suit the kind, and
// settings that contradict each other.
import { type DependencyKind, InvalidOptionsError, DEPENDENCY_KINDS as KINDS } from '@bulwark/core';
import { checkSchedule } from '@bulwark/workflow';
import { checkWorkflows } from '../declarative/check.ts';
import { parseDuration } from './duration.ts';
import type { RawIssue } from './issues.ts';
import { isRecord, type Segment, suggest } from './walk.ts';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function crossCheck(data: unknown): RawIssue[] {
  const issues: RawIssue[] = [];
  if (!isRecord(data)) return issues;
  const dependencies = isRecord(data.dependencies) ? data.dependencies : {};
  const names = Object.keys(dependencies);
  for (const [name, dep] of Object.entries(dependencies)) {
    const at: Segment[] = ['dependencies', name];
    checkName(at, name, issues);
    if (!isRecord(dep)) continue;
    const kind = dep.kind ?? 'generic';
    // An unknown kind has its own issue; judging sections against it would only add noise.
    if (!KINDS.includes(kind as DependencyKind)) continue;
    if (kind === 'compute' && dep.pool === undefined) {
      issues.push({
        path: [...at, 'pool'],
        message: 'is required for kind compute: give pool.module, the worker module',
      });
    }
    if (dep.pool !== undefined && kind !== 'compute') {
      issues.push({
        path: [...at, 'pool'],
        message: `applies to kind 'compute' only (this one is '${String(kind)}')`,
        atKey: true,
      });
    }
    if (dep.http !== undefined && kind !== 'http') {
      issues.push({
        path: [...at, 'http'],
        message: `applies to kind 'http' only (this one is '${String(kind)}')`,
        atKey: true,
      });
    }
    if (isRecord(dep.health) && dep.health.path !== undefined) {
      if (dep.health.mode === 'passive') {
        issues.push({ path: [...at, 'health', 'path'], message: "is fetched only in mode 'active'" });
      } else if (kind !== 'http') {
        issues.push({
          path: [...at, 'health', 'path'],
          message: "applies to kind 'http' only; other kinds are checked in code",
        });
      }
    }
    checkPolicies(at, dep, issues);
    if (isRecord(dep.operations)) {
      for (const [op, settings] of Object.entries(dep.operations)) {
        checkName([...at, 'operations', op], op, issues);
        if (isRecord(settings)) checkPolicies([...at, 'operations', op], settings, issues);
      }
    }
  }
  const groups = isRecord(data.groups) ? data.groups : {};
  for (const [name, group] of Object.entries(groups)) {
    const at: Segment[] = ['groups', name];
    checkName(at, name, issues);
    if (!isRecord(group) || !Array.isArray(group.providers)) continue;
    const seen = new Set<string>();
    group.providers.forEach((p: unknown, i: number) => {
      const ref =
        typeof p === 'string'
          ? p
          : isRecord(p) && typeof p.dependency === 'string'
            ? p.dependency
            : undefined;
      if (ref === undefined) return;
      const path: Segment[] =
        typeof p === 'string' ? [...at, 'providers', i] : [...at, 'providers', i, 'dependency'];
      if (!(ref in dependencies)) {
        const near = suggest(ref, names);
        issues.push({
          path,
          message: `no dependency '${ref}' is defined${near ? `; did you mean '${near}'?` : ''}`,
        });
      } else if (seen.has(ref)) {
        issues.push({ path, message: `'${ref}' is listed twice` });
      }
      seen.add(ref);
    });
  }
  issues.push(...checkWorkflows(data));
  checkSchedules(data.schedules, issues);
  return issues;
}

/**
 * Each schedule's cron expression parses and its time zone exists, as the scheduler will judge
 * them (the types, the priority and `catchUp` are the schema's). Which workflows exist is
 * known only at start, where code and built-in ones are registered too.
 */
function checkSchedules(schedules: unknown, issues: RawIssue[]): void {
  if (!isRecord(schedules)) return;
  for (const [name, schedule] of Object.entries(schedules)) {
    checkName(['schedules', name], name, issues);
    if (!isRecord(schedule) || typeof schedule.cron !== 'string' || typeof schedule.workflow !== 'string')
      continue;
    const { cron, workflow, timezone } = schedule;
    // The expression and the zone only: the schema reports the rest, once.
    if (timezone !== undefined && typeof timezone !== 'string') continue;
    try {
      checkSchedule({ name, cron, workflow, ...(timezone === undefined ? {} : { timezone }) });
    } catch (error) {
      if (!(error instanceof InvalidOptionsError)) throw error;
      // The field it names, under this schedule (`schedules.<name>.cron` → ['schedules', name, 'cron']).
      const field = error.path.slice(`schedules.${name}`.length).split('.').filter(Boolean);
      issues.push({
        path: ['schedules', name, ...field],
        message: error.message.slice(error.path.length + 2),
      });
    }
  }
}

function checkName(path: Segment[], name: string, issues: RawIssue[]): void {
  if (!NAME.test(name)) {
    issues.push({
      path,
      message: "a name holds letters, digits, '_', '-' and '.', and does not start with '-' or '.'",
      atKey: true,
    });
  }
}

function checkPolicies(at: Segment[], settings: Record<string, unknown>, issues: RawIssue[]): void {
  const { retry, breaker, rateLimit } = settings;
  if (isRecord(retry)) {
    const base = parseDuration(retry.base);
    const max = parseDuration(retry.max);
    if (base !== undefined && max !== undefined && max < base) {
      issues.push({
        path: [...at, 'retry', 'max'],
        message: `must be at least base (${String(retry.base)}), got ${String(retry.max)}`,
      });
    }
  }
  if (isRecord(breaker) && isRecord(breaker.openBackoff)) {
    const open = parseDuration(breaker.open ?? 30_000);
    const max = parseDuration(breaker.openBackoff.max);
    if (open !== undefined && max !== undefined && max < open) {
      issues.push({
        path: [...at, 'breaker', 'openBackoff', 'max'],
        message: `must be at least the open time (${String(breaker.open ?? '30s')}), got ${String(breaker.openBackoff.max)}`,
      });
    }
  }
  if (isRecord(rateLimit)) {
    const rules = ['tokenBucket', 'slidingWindow'].filter((k) => rateLimit[k] !== undefined);
    if (rules.length === 0)
      issues.push({ path: [...at, 'rateLimit'], message: 'needs one of tokenBucket or slidingWindow' });
    if (rules.length > 1) {
      issues.push({
        path: [...at, 'rateLimit', 'slidingWindow'],
        message: 'cannot be combined with tokenBucket; choose one',
        atKey: true,
      });
    }
    if (rateLimit.maxWait !== undefined && rateLimit.mode !== 'wait') {
      issues.push({
        path: [...at, 'rateLimit', 'maxWait'],
        message: "applies to mode 'wait' only",
        atKey: true,
      });
    }
  }
}
