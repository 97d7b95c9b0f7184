// The one error a configuration file can raise: every issue found in it, each located.
import { BulwarkError, ErrorCodes } from '@bulwark/core';

/** One fault of a configuration, with where it is. */
export interface ConfigIssue {
  /** Dotted path of the fault in the file's terms (`dependencies.db.retry.base`); `''` for the file as a whole. */
  path: string;
  /** 1-based line of the fault in the file; absent when the fault is not in the file (an override). */
  line?: number;
  /** 1-based column, with `line`. */
  column?: number;
  /** Where the faulty value came from: the file's name, or `env BULWARK_...` for an environment override. */
  source?: string;
  /** What is wrong, for people; it never holds the value of an interpolated `${NAME}`. */
  message: string;
}

/** A configuration was rejected; `issues` holds every fault found, not only the first. */
export class ConfigError extends BulwarkError {
  readonly issues: readonly ConfigIssue[];
  /** The file that was read, when there was one. */
  readonly file: string | undefined;
  constructor(issues: readonly ConfigIssue[], file?: string) {
    const count = issues.length === 1 ? '1 issue' : `${issues.length} issues`;
    super(
      ErrorCodes.CONFIG_INVALID,
      `Invalid configuration${file === undefined ? '' : ` in ${file}`} (${count}):\n${issues.map(formatIssue).join('\n')}`,
    );
    this.issues = issues;
    this.file = file;
  }
}

/** `file:line:col  path: message`, the form editors and terminals turn into links. */
export function formatIssue(issue: ConfigIssue): string {
  let where = issue.source ?? '<config>';
  if (issue.line !== undefined) where += `:${issue.line}:${issue.column ?? 1}`;
  return `${where}  ${issue.path === '' ? '(top level)' : issue.path}: ${issue.message}`;
}
