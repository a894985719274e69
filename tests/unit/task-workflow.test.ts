import { describe, expect, it } from 'vitest';
import { AppError } from '../../workers/lib/errors';
import {
  type BoardRules,
  newTaskFacts,
  planTaskChange,
  type TaskActor,
  type TaskChange,
  type TaskFacts,
} from '../../workers/services/task-workflow';

const OFF: BoardRules = {
  requireApprovalForDone: false,
  requireReviewBeforeDone: false,
  commentRequiredForReview: false,
  blockStatusChangesWithPendingApproval: false,
  onlyLeadCanChangeStatus: false,
};
const operator: TaskActor = { kind: 'operator', userId: null };
const lead: TaskActor = { kind: 'agent', agentId: 'lead', isLead: true };
const worker: TaskActor = { kind: 'agent', agentId: 'w1', isLead: false };

const facts = (over: Partial<TaskFacts> = {}): TaskFacts => ({ ...newTaskFacts('lead', []), version: 4, ...over });
const status = (to: TaskChange['status'], extra: Partial<TaskChange> = {}): TaskChange => ({
  fields: ['status', ...(extra.fields ?? [])],
  status: to,
  ...extra,
});

/** The AppError `fn` throws, as status and code. */
function refusal(fn: () => unknown): { status: number; code: string; details?: Record<string, unknown> } {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return { status: err.status, code: err.code, details: err.details };
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('task workflow: board rules', () => {
  it('require_approval_for_done: done needs an approved approval when on, not when off', () => {
    const rules = { ...OFF, requireApprovalForDone: true };
    expect(refusal(() => planTaskChange(rules, facts(), operator, status('done')))).toMatchObject({
      status: 409,
      code: 'approval_required',
    });
    const plan = planTaskChange(rules, facts({ hasApprovedApproval: true }), operator, status('done'));
    expect(plan).toMatchObject({ status: 'done', statusChanged: true });
    expect(plan.requires.approvedApproval).toBe(true);
    expect(planTaskChange(OFF, facts(), operator, status('done')).requires.approvedApproval).toBe(false);
  });

  it('require_review_before_done: done only from review when on', () => {
    const rules = { ...OFF, requireReviewBeforeDone: true };
    for (const from of ['inbox', 'in_progress'] as const) {
      expect(refusal(() => planTaskChange(rules, facts({ status: from }), operator, status('done'))).code).toBe(
        'review_required',
      );
    }
    expect(planTaskChange(rules, facts({ status: 'review' }), operator, status('done')).status).toBe('done');
    expect(planTaskChange(OFF, facts({ status: 'in_progress' }), operator, status('done')).status).toBe('done');
  });

  it('comment_required_for_review: review needs a comment when on', () => {
    const rules = { ...OFF, commentRequiredForReview: true };
    expect(refusal(() => planTaskChange(rules, facts(), operator, status('review'))).code).toBe('comment_required');
    const plan = planTaskChange(rules, facts({ hasComment: true }), operator, status('review'));
    expect(plan.requires.comment).toBe(true);
    expect(planTaskChange(OFF, facts(), operator, status('review')).requires.comment).toBe(false);
  });

  it('block_status_changes_with_pending_approval: no status change while pending when on; other edits pass', () => {
    const rules = { ...OFF, blockStatusChangesWithPendingApproval: true };
    const pending = facts({ hasPendingApproval: true });
    expect(refusal(() => planTaskChange(rules, pending, operator, status('in_progress'))).code).toBe(
      'pending_approval',
    );
    expect(planTaskChange(rules, pending, operator, { fields: ['title'] }).statusChanged).toBe(false);
    expect(planTaskChange(OFF, pending, operator, status('in_progress')).status).toBe('in_progress');
  });

  it('only_lead_can_change_status: workers get 403 when on; leads and operators do not', () => {
    const rules = { ...OFF, onlyLeadCanChangeStatus: true };
    expect(refusal(() => planTaskChange(rules, facts(), worker, status('in_progress')))).toMatchObject({
      status: 403,
      code: 'only_lead_can_change_status',
    });
    expect(planTaskChange(rules, facts({ status: 'review' }), lead, status('done')).status).toBe('done');
    expect(planTaskChange(rules, facts(), operator, status('in_progress')).status).toBe('in_progress');
    expect(planTaskChange(OFF, facts(), worker, status('in_progress')).status).toBe('in_progress');
  });

  it('applies the rules in order: blocked before pending approval before review before comment before approval', () => {
    const all: BoardRules = {
      requireApprovalForDone: true,
      requireReviewBeforeDone: true,
      commentRequiredForReview: true,
      blockStatusChangesWithPendingApproval: true,
      onlyLeadCanChangeStatus: false,
    };
    const messy = facts({ blockedByTaskIds: ['d1'], hasPendingApproval: true });
    expect(refusal(() => planTaskChange(all, messy, operator, status('done'))).code).toBe(
      'task_blocked_cannot_transition',
    );
    expect(refusal(() => planTaskChange(all, facts({ hasPendingApproval: true }), operator, status('done'))).code).toBe(
      'pending_approval',
    );
    expect(refusal(() => planTaskChange(all, facts(), operator, status('done'))).code).toBe('review_required');
    expect(refusal(() => planTaskChange(all, facts(), operator, status('review'))).code).toBe('comment_required');
    expect(refusal(() => planTaskChange(all, facts({ status: 'review' }), operator, status('done'))).code).toBe(
      'approval_required',
    );
  });
});

describe('task workflow: dependencies and versions', () => {
  it('keeps a blocked task from leaving inbox, naming the blockers; moving to inbox is fine', () => {
    const blocked = facts({ blockedByTaskIds: ['a', 'b'] });
    for (const to of ['in_progress', 'review', 'done'] as const) {
      expect(refusal(() => planTaskChange(OFF, blocked, operator, status(to)))).toEqual({
        status: 409,
        code: 'task_blocked_cannot_transition',
        details: { blocked_by_task_ids: ['a', 'b'] },
      });
    }
    const back = planTaskChange(OFF, { ...blocked, status: 'in_progress' }, operator, status('inbox'));
    expect(back.requires.dependenciesDone).toBe(false);
    expect(planTaskChange(OFF, facts(), operator, status('in_progress')).requires.dependenciesDone).toBe(true);
  });

  it('refuses a dependency cycle with 422 and a stale version with 409', () => {
    const cycle = refusal(() =>
      planTaskChange(OFF, facts({ dependencyCycle: true }), operator, { fields: ['depends_on_task_ids'] }),
    );
    expect(cycle).toMatchObject({ status: 422, code: 'dependency_cycle' });
    expect(refusal(() => planTaskChange(OFF, facts(), operator, { fields: ['title'], expectedVersion: 3 }))).toEqual({
      status: 409,
      code: 'version_conflict',
      details: { current_version: 4 },
    });
    expect(planTaskChange(OFF, facts(), operator, { fields: ['title'], expectedVersion: 4 }).statusChanged).toBe(false);
  });
});

describe('task workflow: roles', () => {
  it('lets workers change only status and custom fields, on unassigned or their own tasks', () => {
    expect(refusal(() => planTaskChange(OFF, facts(), worker, { fields: ['title', 'status'] }))).toEqual({
      status: 403,
      code: 'field_not_allowed',
      details: { fields: ['title'] },
    });
    expect(
      refusal(() => planTaskChange(OFF, facts({ assigneeAgentId: 'w2' }), worker, { fields: ['custom_fields'] })).code,
    ).toBe('not_your_task');
    expect(planTaskChange(OFF, facts({ assigneeAgentId: 'w1' }), worker, { fields: ['custom_fields'] })).toMatchObject({
      assigneeChanged: false,
      statusChanged: false,
    });
  });

  it('self-assigns on in_progress, hands to the lead on review, unassigns on inbox', () => {
    expect(planTaskChange(OFF, facts(), worker, status('in_progress'))).toMatchObject({
      assigneeAgentId: 'w1',
      assigneeChanged: true,
    });
    const working = facts({ status: 'in_progress', assigneeAgentId: 'w1' });
    expect(planTaskChange(OFF, working, worker, status('review')).assigneeAgentId).toBe('lead');
    expect(planTaskChange(OFF, { ...working, leadAgentId: null }, worker, status('review')).assigneeAgentId).toBe('w1');
    expect(planTaskChange(OFF, working, worker, status('inbox')).assigneeAgentId).toBeNull();
    for (const [from, to] of [
      ['inbox', 'review'],
      ['inbox', 'done'],
      ['in_progress', 'done'],
      ['review', 'done'],
    ] as const) {
      expect(refusal(() => planTaskChange(OFF, facts({ status: from }), worker, status(to))).code).toBe(
        'transition_not_allowed',
      );
    }
  });

  it('lets leads review, assign, and start while assigning; nothing else', () => {
    const review = facts({ status: 'review', assigneeAgentId: 'lead' });
    expect(planTaskChange(OFF, review, lead, status('done')).assigneeAgentId).toBe('lead');
    expect(planTaskChange(OFF, review, lead, status('inbox')).assigneeAgentId).toBeNull();
    expect(
      planTaskChange(OFF, review, lead, status('inbox', { fields: ['assignee_agent_id'], assigneeAgentId: 'w1' }))
        .assigneeAgentId,
    ).toBe('w1');
    expect(
      planTaskChange(OFF, facts(), lead, { fields: ['assignee_agent_id', 'title'], assigneeAgentId: 'w1' }),
    ).toMatchObject({ assigneeAgentId: 'w1', assigneeChanged: true });
    expect(
      planTaskChange(
        OFF,
        facts(),
        lead,
        status('in_progress', { fields: ['assignee_agent_id'], assigneeAgentId: 'w1' }),
      ),
    ).toMatchObject({ status: 'in_progress', assigneeAgentId: 'w1' });
    for (const [from, to] of [
      ['inbox', 'in_progress'],
      ['inbox', 'review'],
      ['in_progress', 'review'],
      ['in_progress', 'done'],
      ['review', 'in_progress'],
    ] as const) {
      expect(refusal(() => planTaskChange(OFF, facts({ status: from }), lead, status(to))).code).toBe(
        'transition_not_allowed',
      );
    }
  });

  it('lets operators make any transition the rules allow, without reassigning', () => {
    for (const from of ['inbox', 'in_progress', 'review', 'done'] as const) {
      for (const to of ['inbox', 'in_progress', 'review', 'done'] as const) {
        const plan = planTaskChange(OFF, facts({ status: from, assigneeAgentId: 'w1' }), operator, status(to));
        expect(plan).toMatchObject({ status: to, statusChanged: from !== to, assigneeAgentId: 'w1' });
      }
    }
  });
});
