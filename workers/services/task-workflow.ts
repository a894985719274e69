/**
 * The task workflow as pure rules: given the board's rules, what is known about the task, who is
 * acting and what they ask for, either a plan for the write or the AppError the client gets.
 * No I/O here. The write (services/tasks.ts) re-checks, in the same conditional statement, every
 * fact about other rows the plan relied on (`TaskPlan.requires`), so a concurrent change cannot
 * slip between the decision and the write; when that re-check fails the service reloads the facts
 * and asks again, which yields the precise error.
 *
 * Actors: operators (users and API keys) may make any transition the board rules allow. Agents are
 * the board's lead or workers, with role rules on top of the board rules.
 *
 * Status codes and error codes, in the order they are checked:
 * - 409 `version_conflict`: the client's `version` is not the task's (details.current_version).
 * - 403 `field_not_allowed`: a worker agent changes something other than status or custom_fields
 *   (details.fields).
 * - 403 `not_your_task`: a worker agent touches a task assigned to another agent.
 * - 403 `only_lead_can_change_status`: board rule `only_lead_can_change_status`, worker agents.
 * - 403 `transition_not_allowed`: an agent's status change outside its role. Workers: inbox ->
 *   in_progress (self-assigns), in_progress -> review (hands the task to the board lead, if any),
 *   in_progress -> inbox (unassigns). Leads: review -> done, review -> inbox (unassigns unless an
 *   assignee is given), inbox -> in_progress together with assigning an agent.
 * - 422 `dependency_cycle`: the new dependencies would make the task depend on itself.
 * - 409 `task_blocked_cannot_transition`: a task with dependencies that are not done cannot move
 *   to any status but inbox, so it cannot leave inbox (details.blocked_by_task_ids).
 * - 409 `pending_approval`: board rule `block_status_changes_with_pending_approval` while an
 *   approval covering the task is pending.
 * - 409 `review_required`: board rule `require_review_before_done`, done only from review.
 * - 409 `comment_required`: board rule `comment_required_for_review`, review needs a comment on
 *   the task.
 * - 409 `approval_required`: board rule `require_approval_for_done`, done needs an approved
 *   approval covering the task.
 */
import { AppError } from '../lib/errors';

export const TASK_STATUSES = ['inbox', 'in_progress', 'review', 'done'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TASK_PRIORITIES = ['low', 'medium', 'high', 'urgent'] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];

/** Fields a worker agent may change on an unassigned task or its own. */
export const WORKER_FIELDS: readonly string[] = ['status', 'custom_fields'];

export interface BoardRules {
  requireApprovalForDone: boolean;
  requireReviewBeforeDone: boolean;
  commentRequiredForReview: boolean;
  blockStatusChangesWithPendingApproval: boolean;
  onlyLeadCanChangeStatus: boolean;
}

export type TaskActor =
  | { kind: 'operator'; userId: string | null }
  | { kind: 'agent'; agentId: string; isLead: boolean };

/** What the rules need to know about the task; a task being created is an empty inbox task. */
export interface TaskFacts {
  status: TaskStatus;
  assigneeAgentId: string | null;
  version: number;
  leadAgentId: string | null;
  /** The task's dependencies (as they will be after the change) that are not done. */
  blockedByTaskIds: string[];
  /** The requested dependencies would close a cycle. */
  dependencyCycle: boolean;
  hasComment: boolean;
  hasPendingApproval: boolean;
  hasApprovedApproval: boolean;
}

export interface TaskChange {
  /** Wire names of the fields the request sets (status and assignee_agent_id included). */
  fields: readonly string[];
  status?: TaskStatus;
  /** Undefined: unchanged; null: unassign. */
  assigneeAgentId?: string | null;
  /** The version the client read; checked when given (operators always give it). */
  expectedVersion?: number;
}

/** Facts about other rows that the write must re-check in its own statement. */
export interface PlanRequirements {
  dependenciesDone: boolean;
  noPendingApproval: boolean;
  approvedApproval: boolean;
  comment: boolean;
}

export interface TaskPlan {
  status: TaskStatus;
  statusChanged: boolean;
  assigneeAgentId: string | null;
  assigneeChanged: boolean;
  requires: PlanRequirements;
}

const forbidden = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(403, code, message, details ? { details } : {});
const conflict = (code: string, message: string, details?: Record<string, unknown>) =>
  new AppError(409, code, message, details ? { details } : {});

/** Decides a change (or a creation: pass the facts of an empty inbox task). Throws the client's error. */
export function planTaskChange(rules: BoardRules, facts: TaskFacts, actor: TaskActor, change: TaskChange): TaskPlan {
  if (change.expectedVersion !== undefined && change.expectedVersion !== facts.version) {
    throw conflict('version_conflict', 'The task changed since you read it; reload it and retry.', {
      current_version: facts.version,
    });
  }
  const from = facts.status;
  const to = change.status ?? from;
  const statusChanged = to !== from;
  let assignee = change.assigneeAgentId === undefined ? facts.assigneeAgentId : change.assigneeAgentId;

  if (actor.kind === 'agent') {
    assignee = actor.isLead
      ? leadAssignee(from, to, statusChanged, change, assignee)
      : workerAssignee(rules, facts, actor.agentId, change, from, to, statusChanged, assignee);
  }

  if (facts.dependencyCycle) {
    throw new AppError(422, 'dependency_cycle', 'These dependencies would make the task depend on itself.', {
      details: { issues: [{ path: 'depends_on_task_ids', message: 'would create a dependency cycle' }] },
    });
  }

  const requires: PlanRequirements = {
    dependenciesDone: statusChanged && to !== 'inbox',
    noPendingApproval: statusChanged && rules.blockStatusChangesWithPendingApproval,
    approvedApproval: statusChanged && to === 'done' && rules.requireApprovalForDone,
    comment: statusChanged && to === 'review' && rules.commentRequiredForReview,
  };
  if (requires.dependenciesDone && facts.blockedByTaskIds.length > 0) {
    throw conflict('task_blocked_cannot_transition', 'The task waits on dependencies that are not done.', {
      blocked_by_task_ids: facts.blockedByTaskIds,
    });
  }
  if (requires.noPendingApproval && facts.hasPendingApproval) {
    throw conflict('pending_approval', 'An approval covering this task is pending; its status cannot change yet.');
  }
  if (statusChanged && to === 'done' && rules.requireReviewBeforeDone && from !== 'review') {
    throw conflict('review_required', 'This board moves tasks to done only from review.');
  }
  if (requires.comment && !facts.hasComment) {
    throw conflict('comment_required', 'This board needs a comment on the task before it moves to review.');
  }
  if (requires.approvedApproval && !facts.hasApprovedApproval) {
    throw conflict('approval_required', 'This board needs an approved approval covering the task to mark it done.');
  }
  return {
    status: to,
    statusChanged,
    assigneeAgentId: assignee,
    assigneeChanged: assignee !== facts.assigneeAgentId,
    requires,
  };
}

/** Leads review (review -> done | inbox), assign, and may assign-and-start an inbox task. */
function leadAssignee(
  from: TaskStatus,
  to: TaskStatus,
  statusChanged: boolean,
  change: TaskChange,
  assignee: string | null,
): string | null {
  if (!statusChanged) return assignee;
  if (from === 'review' && (to === 'done' || to === 'inbox')) {
    return to === 'inbox' && change.assigneeAgentId === undefined ? null : assignee;
  }
  if (from === 'inbox' && to === 'in_progress' && change.assigneeAgentId) return assignee;
  throw forbidden(
    'transition_not_allowed',
    `A board lead moves tasks from review to done or inbox, or starts an inbox task while assigning it (not ${from} -> ${to}).`,
  );
}

/** Workers work on unassigned tasks or their own: status and custom fields only. */
function workerAssignee(
  rules: BoardRules,
  facts: TaskFacts,
  agentId: string,
  change: TaskChange,
  from: TaskStatus,
  to: TaskStatus,
  statusChanged: boolean,
  assignee: string | null,
): string | null {
  const extra = change.fields.filter((f) => !WORKER_FIELDS.includes(f));
  if (extra.length > 0) {
    throw forbidden('field_not_allowed', 'Worker agents may change only status and custom_fields.', {
      fields: extra,
    });
  }
  if (facts.assigneeAgentId !== null && facts.assigneeAgentId !== agentId) {
    throw forbidden('not_your_task', 'This task is assigned to another agent.');
  }
  if (!statusChanged) return assignee;
  if (rules.onlyLeadCanChangeStatus) {
    throw forbidden('only_lead_can_change_status', 'On this board only the lead agent changes task status.');
  }
  if (from === 'inbox' && to === 'in_progress') return agentId;
  if (from === 'in_progress' && to === 'review') return facts.leadAgentId ?? assignee;
  if (from === 'in_progress' && to === 'inbox') return null;
  throw forbidden(
    'transition_not_allowed',
    `Worker agents move tasks inbox -> in_progress -> review, or back to inbox (not ${from} -> ${to}).`,
  );
}

/** The facts of a task that does not exist yet. */
export function newTaskFacts(leadAgentId: string | null, blockedByTaskIds: string[]): TaskFacts {
  return {
    status: 'inbox',
    assigneeAgentId: null,
    version: 0,
    leadAgentId,
    blockedByTaskIds,
    dependencyCycle: false,
    hasComment: false,
    hasPendingApproval: false,
    hasApprovedApproval: false,
  };
}
