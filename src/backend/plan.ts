import type { BackendPlan, BackendStep } from './types.js'

/** The parts of an orun plan file the backend needs; structural so any plan model fits. */
export interface PlanLike {
  metadata: { checksum: string }
  jobs: Array<{
    id: string
    component?: string
    dependsOn?: string[]
    steps?: Array<{
      id?: string
      name?: string
      use?: string
      run?: string
      with?: Record<string, unknown>
    }>
  }>
}

export const BACKEND_PLAN_VERSION = 'sourceplane.io/v1'

type PlanStep = NonNullable<PlanLike['jobs'][number]['steps']>[number]

function toBackendStep(step: PlanStep): BackendStep {
  const stepId = step.id || step.name || step.use || 'unnamed-step'
  const withArgs: Record<string, unknown> = step.use
    ? { ...(step.with ?? {}) }
    : { ...(step.with ?? {}), ...(step.run !== undefined ? { raw: step.run } : {}) }
  if (step.name) withArgs.name = step.name
  return { stepId, uses: step.use || 'run', with: withArgs }
}

/** Second precision, like the service's own timestamps. */
function nowIso(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/**
 * Converts an orun plan into the backend's plan, per "Conversion from an orun
 * plan file": the checksum is the plan id (not metadata.checksum).
 */
export function toBackendPlan(plan: PlanLike, planId: string, createdAt?: string): BackendPlan {
  return {
    checksum: planId,
    version: BACKEND_PLAN_VERSION,
    createdAt: createdAt ?? nowIso(),
    jobs: plan.jobs.map(job => ({
      jobId: job.id,
      // Read from the field, never taken apart from the id: its format changed
      // (comp@env.job, then comp.env.job) and every orun plan writes the field.
      component: job.component ?? '',
      deps: [...(job.dependsOn ?? [])],
      steps: (job.steps ?? []).map(toBackendStep)
    }))
  }
}
