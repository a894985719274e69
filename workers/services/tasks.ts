/**
 * Tasks on a board, for operators and agents alike. Every change is two round trips: one query
 * loads what the workflow rules need (services/task-workflow.ts decides), then one statement makes
 * the change with its audit and activity rows, guarded by the task's `version` and by every fact
 * about other rows the decision relied on (dependencies done, approvals, comments, cycles). When
 * the guard fails, the facts are reloaded and decided again to name the precise error.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { AgentPrincipal, Principal } from '../auth/principal';
import type { Database } from '../db/client';
import { pgErrorCode } from '../db/errors';
import { fromRow } from '../db/rows';
import { boards } from '../db/schema';
import { tasks } from '../db/schema-domain';
import { AppError } from '../lib/errors';
import type { ActivityEvent } from './activity';
import {
  type ActivitySpec,
  type ChangeResult,
  type ChangeSpec,
  changeResult,
  changeStatement,
  jsonb,
  runChange,
  textArray,
  uuidArray,
} from './activity-feed';
import type { AuditContext } from './audit';
import { type BoardViewer, boardEditor, boardOpenTo, boardViewer } from './boards';
import { type FieldSpec, validateCustomFields } from './custom-fields';
import { getTask } from './task-reads';
import {
  type BoardRules,
  newTaskFacts,
  planTaskChange,
  type TaskActor,
  type TaskChange,
  type TaskFacts,
  type TaskPlan,
  type TaskPriority,
  type TaskStatus,
} from './task-workflow';

export type Task = typeof tasks.$inferSelect;
export type TaskView = Task & { dependsOnTaskIds: string[]; blockedByTaskIds: string[] };

/** Where a caller acts: one board of one organization, with the caller's board access. */
export interface TaskScope {
  organizationId: string;
  boardId: string;
  reader: BoardViewer;
  writer: BoardViewer;
  actor: TaskActor;
}

export function operatorScope(principal: Principal, organizationId: string, boardId: string): TaskScope {
  return {
    organizationId,
    boardId,
    reader: boardViewer(principal, organizationId),
    writer: boardEditor(principal, organizationId),
    actor: { kind: 'operator', userId: principal.kind === 'user' ? principal.userId : null },
  };
}

/** Agents act on their own board only. */
export function agentScope(principal: AgentPrincipal): TaskScope {
  const open: BoardViewer = { organizationId: principal.organizationId, memberId: null };
  return {
    organizationId: principal.organizationId,
    boardId: principal.boardId,
    reader: open,
    writer: open,
    actor: { kind: 'agent', agentId: principal.agentId, isLead: principal.isLead },
  };
}

/** The settable fields, named as on the wire. */
export interface TaskFields {
  title?: string;
  description?: string;
  status?: TaskStatus;
  priority?: TaskPriority;
  due_at?: string | null;
  assignee_agent_id?: string | null;
  tags?: string[];
  custom_fields?: Record<string, unknown>;
  depends_on_task_ids?: string[];
}

export const taskNotFound = () => new AppError(404, 'not_found', 'No such task.');
export const readOnlyBoard = () => new AppError(403, 'forbidden', 'You have read-only access to this board.');
const invalid = (path: string, message: string) =>
  new AppError(422, 'validation_failed', `${path} ${message}.`, {
    details: { location: 'json', issues: [{ path, message }] },
  });

// Facts about other rows, as SQL on a task id (the rules' inputs, and the write's guards).
const undoneDependencies = (taskId: SQL) =>
  sql`SELECT d.depends_on_task_id FROM task_dependencies d JOIN tasks dt ON dt.id = d.depends_on_task_id
      WHERE d.task_id = ${taskId} AND dt.status <> 'done'`;
const undoneAmong = (ids: readonly string[]) =>
  sql`SELECT dt.id FROM tasks dt WHERE dt.id = ANY(${uuidArray(ids)}) AND dt.status <> 'done'`;
const approvalIn = (taskId: SQL, status: 'pending' | 'approved') =>
  sql`EXISTS (SELECT 1 FROM approval_tasks apt JOIN approvals ap ON ap.id = apt.approval_id
      WHERE apt.task_id = ${taskId} AND ap.status = ${status})`;
const hasComment = (taskId: SQL) => sql`EXISTS (SELECT 1 FROM task_comments tc WHERE tc.task_id = ${taskId})`;
/** True when `ids` (the new dependencies of `taskId`) reach `taskId` through existing edges. */
const closesCycle = (taskId: SQL, ids: readonly string[]) =>
  sql`EXISTS (WITH RECURSIVE reach(id) AS (
        SELECT x FROM unnest(${uuidArray(ids)}) x
        UNION SELECT d.depends_on_task_id FROM task_dependencies d JOIN reach r ON d.task_id = r.id
      ) SELECT 1 FROM reach WHERE reach.id = ${taskId})`;
const onBoard = (ids: readonly string[], boardId: SQL) =>
  sql`(SELECT count(*) FROM tasks dt WHERE dt.id = ANY(${uuidArray(ids)}) AND dt.board_id = ${boardId}) = ${ids.length}`;
const agentOnBoard = (agentId: string, boardId: SQL) =>
  sql`EXISTS (SELECT 1 FROM agents ag WHERE ag.id = ${agentId}::uuid AND ag.board_id = ${boardId})`;
const jsonIds = (query: SQL) => sql`coalesce((SELECT json_agg(q.id ORDER BY q.id) FROM (${query}) q(id)), '[]'::json)`;

const RULES = sql.raw(`json_build_object(
  'requireApprovalForDone', boards.require_approval_for_done,
  'requireReviewBeforeDone', boards.require_review_before_done,
  'commentRequiredForReview', boards.comment_required_for_review,
  'blockStatusChangesWithPendingApproval', boards.block_status_changes_with_pending_approval,
  'onlyLeadCanChangeStatus', boards.only_lead_can_change_status) AS rules,
  (SELECT ag.id FROM agents ag WHERE ag.board_id = boards.id AND ag.is_lead LIMIT 1) AS lead_agent_id`);
const fieldDefs = (organizationId: string) =>
  sql`(SELECT coalesce(json_agg(json_build_object('key', f.key, 'fieldType', f.field_type, 'required', f.required)), '[]'::json)
       FROM custom_field_definitions f WHERE f.organization_id = ${organizationId}::uuid) AS field_defs`;

/** What one load returns, whether for a new task (no `task`) or an existing one. */
type Loaded = {
  task: Record<string, unknown> | null;
  rules: BoardRules;
  lead_agent_id: string | null;
  can_write: boolean;
  depends_on_task_ids: string[];
  blocked_by_task_ids: string[];
  found_dependency_ids: string[];
  dependency_cycle: boolean;
  assignee_ok: boolean;
  has_comment: boolean;
  has_pending_approval: boolean;
  has_approved_approval: boolean;
  field_defs: FieldSpec[] | null;
};

/** Checks the requested relations (same-board dependencies and assignee) and the custom fields. */
function checkInput(loaded: Loaded, input: TaskFields, creating: boolean) {
  const deps = input.depends_on_task_ids;
  if (deps) {
    const missing = deps.filter((id) => !loaded.found_dependency_ids.includes(id));
    if (missing.length > 0)
      throw invalid('depends_on_task_ids', `names tasks not on this board: ${missing.join(', ')}`);
  }
  if (input.assignee_agent_id && !loaded.assignee_ok)
    throw invalid('assignee_agent_id', 'is not an agent of this board');
  if (input.custom_fields || creating) {
    return validateCustomFields(loaded.field_defs ?? [], input.custom_fields ?? {}, creating);
  }
  return null;
}

function factsOf(loaded: Loaded): TaskFacts {
  const task = loaded.task;
  return {
    ...newTaskFacts(loaded.lead_agent_id, loaded.blocked_by_task_ids),
    status: (task?.status as TaskStatus | undefined) ?? 'inbox',
    assigneeAgentId: (task?.assignee_agent_id as string | null | undefined) ?? null,
    version: Number(task?.version ?? 0),
    dependencyCycle: loaded.dependency_cycle,
    hasComment: loaded.has_comment,
    hasPendingApproval: loaded.has_pending_approval,
    hasApprovedApproval: loaded.has_approved_approval,
  };
}

/** `expr AS name`, or `fallback AS name` when there is nothing to compute. */
const column = (name: string, expr: SQL | false | undefined, fallback: string) =>
  expr ? sql`${expr} AS ${sql.raw(name)}` : sql.raw(`${fallback} AS ${name}`);

/** One query: the board's rules and, for an existing task, the facts about it. Null: not visible. */
async function load(db: Database, scope: TaskScope, taskId: string | null, input: TaskFields): Promise<Loaded | null> {
  const t = sql`tasks.id`;
  const deps = input.depends_on_task_ids;
  const assignee = input.assignee_agent_id;
  const has = taskId !== null;
  const columns = [
    column('task', has && sql`row_to_json(tasks)`, 'NULL::json'),
    RULES,
    sql`${boardOpenTo(db, scope.writer, boards.id)} AS can_write`,
    column(
      'depends_on_task_ids',
      has && jsonIds(sql`SELECT d.depends_on_task_id FROM task_dependencies d WHERE d.task_id = ${t}`),
      "'[]'::json",
    ),
    column(
      'blocked_by_task_ids',
      deps ? jsonIds(undoneAmong(deps)) : has && jsonIds(undoneDependencies(t)),
      "'[]'::json",
    ),
    column(
      'found_dependency_ids',
      deps &&
        jsonIds(sql`SELECT dt.id FROM tasks dt WHERE dt.id = ANY(${uuidArray(deps)}) AND dt.board_id = boards.id`),
      "'[]'::json",
    ),
    column('dependency_cycle', has && deps && closesCycle(t, deps), 'false'),
    column('assignee_ok', assignee ? agentOnBoard(assignee, sql`boards.id`) : false, 'true'),
    column('has_comment', has && hasComment(t), 'false'),
    column('has_pending_approval', has && approvalIn(t, 'pending'), 'false'),
    column('has_approved_approval', has && approvalIn(t, 'approved'), 'false'),
    input.custom_fields || !has ? fieldDefs(scope.organizationId) : sql`NULL::json AS field_defs`,
  ];
  const from = has
    ? sql`FROM tasks JOIN boards ON boards.id = tasks.board_id WHERE tasks.id = ${taskId}::uuid
          AND tasks.board_id = ${scope.boardId}::uuid AND tasks.organization_id = ${scope.organizationId}::uuid`
    : sql`FROM boards WHERE boards.id = ${scope.boardId}::uuid AND boards.organization_id = ${scope.organizationId}::uuid`;
  const result = await db.execute<Loaded>(
    sql`SELECT ${sql.join(columns, sql`, `)} ${from} AND ${boardOpenTo(db, scope.reader, boards.id)}`,
  );
  return result.rows[0] ?? null;
}

/** The workflow's view of a request. */
function changeOf(input: TaskFields, expectedVersion?: number): TaskChange {
  return {
    fields: Object.keys(input).filter((k) => input[k as keyof TaskFields] !== undefined),
    status: input.status,
    assigneeAgentId: input.assignee_agent_id,
    expectedVersion,
  };
}

/** Guards of the write: the facts about other rows that `plan` relied on. */
function guards(plan: TaskPlan, input: TaskFields, taskId: SQL, boardId: SQL): SQL[] {
  const deps = input.depends_on_task_ids;
  const out: SQL[] = [];
  if (deps) out.push(onBoard(deps, boardId));
  if (plan.requires.dependenciesDone) {
    out.push(sql`NOT EXISTS (${deps ? undoneAmong(deps) : undoneDependencies(taskId)})`);
  }
  if (plan.requires.noPendingApproval) out.push(sql`NOT ${approvalIn(taskId, 'pending')}`);
  if (plan.requires.approvedApproval) out.push(approvalIn(taskId, 'approved'));
  if (plan.requires.comment) out.push(hasComment(taskId));
  if (plan.assigneeChanged && plan.assigneeAgentId) out.push(agentOnBoard(plan.assigneeAgentId, boardId));
  return out;
}

const FOREIGN_KEY_VIOLATION = '23503';

/**
 * Runs a change statement; with `lockBoard`, first takes the board's dependency lock in the same
 * transaction, so the statement's snapshot sees every dependency change committed before it (two
 * concurrent edits cannot each miss the other's edge and close a cycle). An agent or task removed
 * between the guard and the commit is a conflict.
 */
async function write(db: Database, ctx: AuditContext, spec: ChangeSpec, lockBoard?: string): Promise<ChangeResult> {
  try {
    if (!lockBoard) return await runChange(db, ctx, spec);
    const [, changed] = await db.batch([
      db.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`task_dependencies:${lockBoard}`}::text, 0))`),
      db.execute<Record<string, unknown>>(changeStatement(ctx, spec)),
    ]);
    return changeResult(changed.rows[0]);
  } catch (err) {
    if (pgErrorCode(err) !== FOREIGN_KEY_VIOLATION) throw err;
    throw new AppError(409, 'conflict', 'An agent or task this change names was removed meanwhile; retry.');
  }
}

const actorAgent = (actor: TaskActor) => (actor.kind === 'agent' ? sql`${actor.agentId}::uuid` : sql`NULL::uuid`);

function activities(
  scope: TaskScope,
  plan: TaskPlan,
  fields: readonly string[],
  from: TaskStatus | null,
): ActivitySpec[] {
  const base = { boardId: sql`changed.board_id`, taskId: sql`changed.id` };
  const agentId = actorAgent(scope.actor);
  if (from === null) {
    return [
      {
        ...base,
        type: 'task.created',
        agentId,
        message: sql`'Task created: ' || changed.title`,
        payload: sql`jsonb_build_object('status', changed.status, 'assignee_agent_id', changed.assignee_agent_id)`,
      },
    ];
  }
  const out: ActivitySpec[] = [];
  if (plan.statusChanged) {
    out.push({
      ...base,
      type: 'task.status_changed',
      agentId,
      message: sql`'Task moved to ' || changed.status || ': ' || changed.title`,
      payload: sql`jsonb_build_object('from', ${from}::text, 'to', changed.status, 'version', changed.version)`,
    });
  }
  if (plan.assigneeChanged) {
    out.push({
      ...base,
      type: 'task.assigned',
      agentId: sql`changed.assignee_agent_id`,
      message: sql`CASE WHEN changed.assignee_agent_id IS NULL THEN 'Task unassigned: ' ELSE 'Task assigned: ' END || changed.title`,
      payload: sql`jsonb_build_object('assignee_agent_id', changed.assignee_agent_id, 'version', changed.version)`,
    });
  }
  const other = fields.filter((f) => f !== 'status' && f !== 'assignee_agent_id');
  if (other.length > 0) {
    out.push({
      ...base,
      type: 'task.updated',
      agentId,
      message: sql`'Task updated: ' || changed.title`,
      payload: sql`jsonb_build_object('fields', ${jsonb(other)}, 'version', changed.version)`,
    });
  }
  return out;
}

function view(row: Record<string, unknown>, dependsOn: string[], blockedBy: string[]): TaskView {
  return { ...fromRow(tasks, row), dependsOnTaskIds: [...dependsOn].sort(), blockedByTaskIds: [...blockedBy].sort() };
}

const unique = (values: readonly string[]) => [...new Set(values)];
const normalize = (input: TaskFields): TaskFields => ({
  ...input,
  tags: input.tags && unique(input.tags.map((t) => t.trim())),
  depends_on_task_ids: input.depends_on_task_ids && unique(input.depends_on_task_ids.map((id) => id.toLowerCase())),
  assignee_agent_id: input.assignee_agent_id?.toLowerCase() ?? input.assignee_agent_id,
});

export async function createTask(
  db: Database,
  ctx: AuditContext,
  scope: TaskScope,
  raw: TaskFields & { title: string },
): Promise<{ task: TaskView; events: ActivityEvent[] }> {
  const input = normalize(raw);
  for (let attempt = 0; ; attempt++) {
    const loaded = await load(db, scope, null, input);
    if (!loaded) throw new AppError(404, 'not_found', 'No such board.');
    if (!loaded.can_write) throw readOnlyBoard();
    const custom = checkInput(loaded, input, true);
    const plan = planTaskChange(loaded.rules, factsOf(loaded), scope.actor, changeOf(input));
    const deps = input.depends_on_task_ids ?? [];
    const actor = scope.actor;
    const { rows, events } = await write(db, ctx, {
      change: sql`INSERT INTO tasks (organization_id, board_id, title, description, status, priority, due_at,
          assignee_agent_id, created_by_user_id, created_by_agent_id, tags, custom_fields, done_at)
        SELECT boards.organization_id, boards.id, ${input.title}, ${input.description ?? ''}, ${plan.status},
          ${input.priority ?? 'medium'}, ${input.due_at ?? null}::timestamptz, ${plan.assigneeAgentId}::uuid,
          ${actor.kind === 'operator' ? actor.userId : null}::uuid, ${actorAgent(actor)}, ${textArray(input.tags ?? [])},
          ${jsonb(custom?.set ?? {})}, CASE WHEN ${plan.status} = 'done' THEN now() END
        FROM boards WHERE boards.id = ${scope.boardId}::uuid AND boards.organization_id = ${scope.organizationId}::uuid
          AND ${sql.join([sql`true`, ...guards(plan, input, sql`NULL::uuid`, sql`boards.id`)], sql` AND `)}
        RETURNING *`,
      after: [
        sql`deps AS (INSERT INTO task_dependencies (task_id, depends_on_task_id)
          SELECT changed.id, x FROM changed, unnest(${uuidArray(deps)}) x)`,
      ],
      audit: {
        action: 'task.create',
        targetType: 'task',
        details: sql`jsonb_build_object('board_id', changed.board_id, 'title', changed.title, 'status', changed.status)`,
      },
      activity: activities(scope, plan, [], null),
    });
    const [row] = rows;
    if (row) return { task: view(row, deps, loaded.blocked_by_task_ids), events };
    // A guarded fact changed between the load and the insert: the next load names it.
    if (attempt > 0) throw new AppError(409, 'conflict', 'The board changed while the task was created; retry.');
  }
}

export async function updateTask(
  db: Database,
  ctx: AuditContext,
  scope: TaskScope,
  taskId: string,
  raw: TaskFields,
  expectedVersion?: number,
): Promise<{ task: TaskView; events: ActivityEvent[] }> {
  const input = normalize(raw);
  const change = changeOf(input, expectedVersion);
  if (change.fields.length === 0) throw invalid('body', 'changes nothing; give at least one field');
  const loaded = await load(db, scope, taskId, input);
  if (!loaded?.task) throw taskNotFound();
  if (!loaded.can_write) throw readOnlyBoard();
  const custom = checkInput(loaded, input, false);
  const facts = factsOf(loaded);
  const plan = planTaskChange(loaded.rules, facts, scope.actor, change);

  const sets: SQL[] = [sql`version = tasks.version + 1`, sql`updated_at = now()`];
  if (input.title !== undefined) sets.push(sql`title = ${input.title}`);
  if (input.description !== undefined) sets.push(sql`description = ${input.description}`);
  if (input.priority !== undefined) sets.push(sql`priority = ${input.priority}`);
  if (input.due_at !== undefined) sets.push(sql`due_at = ${input.due_at}::timestamptz`);
  if (input.tags !== undefined) sets.push(sql`tags = ${textArray(input.tags)}`);
  if (custom) {
    sets.push(sql`custom_fields = (tasks.custom_fields || ${jsonb(custom.set)}) - ${textArray(custom.clear)}`);
  }
  if (plan.statusChanged) {
    sets.push(sql`status = ${plan.status}`);
    sets.push(sql`done_at = CASE WHEN ${plan.status} = 'done' THEN now() END`);
  }
  if (plan.assigneeChanged) sets.push(sql`assignee_agent_id = ${plan.assigneeAgentId}::uuid`);

  const deps = input.depends_on_task_ids;
  const t = sql`tasks.id`;
  const where = [
    sql`tasks.id = ${taskId}::uuid`,
    sql`tasks.board_id = ${scope.boardId}::uuid`,
    sql`tasks.organization_id = ${scope.organizationId}::uuid`,
    sql`tasks.version = ${facts.version}`,
    ...guards(plan, input, t, sql`tasks.board_id`),
    ...(deps ? [sql`NOT ${closesCycle(t, deps)}`] : []),
  ];
  const after = deps
    ? [
        sql`deps_gone AS (DELETE FROM task_dependencies WHERE task_id IN (SELECT id FROM changed)
            AND NOT (depends_on_task_id = ANY(${uuidArray(deps)})))`,
        sql`deps_new AS (INSERT INTO task_dependencies (task_id, depends_on_task_id)
            SELECT changed.id, x FROM changed, unnest(${uuidArray(deps)}) x ON CONFLICT DO NOTHING)`,
      ]
    : [];
  const { rows, events } = await write(
    db,
    ctx,
    {
      change: sql`UPDATE tasks SET ${sql.join(sets, sql`, `)} WHERE ${sql.join(where, sql` AND `)} RETURNING *`,
      after,
      audit: {
        action: 'task.update',
        targetType: 'task',
        details: sql`jsonb_build_object('fields', ${jsonb(change.fields)}, 'from_status', ${facts.status}::text,
        'status', changed.status, 'version', changed.version)`,
      },
      activity: activities(scope, plan, change.fields, facts.status),
    },
    deps ? scope.boardId : undefined,
  );
  const [row] = rows;
  if (row) return { task: view(row, deps ?? loaded.depends_on_task_ids, loaded.blocked_by_task_ids), events };

  // The version or a guarded fact changed since the load: decide again on fresh facts.
  const fresh = await load(db, scope, taskId, input);
  if (!fresh?.task) throw taskNotFound();
  checkInput(fresh, input, false);
  planTaskChange(fresh.rules, factsOf(fresh), scope.actor, { ...change, expectedVersion: facts.version });
  throw new AppError(409, 'version_conflict', 'The task changed while it was being updated; reload it and retry.', {
    details: { current_version: factsOf(fresh).version },
  });
}

export async function deleteTask(
  db: Database,
  ctx: AuditContext,
  scope: TaskScope,
  taskId: string,
): Promise<{ task: Task; events: ActivityEvent[] }> {
  const { rows, events } = await runChange(db, ctx, {
    change: sql`DELETE FROM tasks USING boards
      WHERE boards.id = tasks.board_id AND tasks.id = ${taskId}::uuid AND tasks.board_id = ${scope.boardId}::uuid
        AND tasks.organization_id = ${scope.organizationId}::uuid AND ${boardOpenTo(db, scope.writer, boards.id)}
      RETURNING tasks.*`,
    audit: { action: 'task.delete', targetType: 'task', details: sql`jsonb_build_object('title', changed.title)` },
    activity: [
      {
        // The task row is gone at commit, so the event names it in its payload only.
        type: 'task.deleted',
        boardId: sql`changed.board_id`,
        agentId: actorAgent(scope.actor),
        message: sql`'Task deleted: ' || changed.title`,
        payload: sql`jsonb_build_object('task_id', changed.id, 'title', changed.title)`,
      },
    ],
  });
  const [row] = rows;
  if (row) return { task: fromRow(tasks, row), events };
  await getTask(db, scope, taskId);
  throw readOnlyBoard();
}

export { getTask, listTasks, type TaskFilter } from './task-reads';
