/**
 * Injected faults: matched after routing and before anything else, in insertion order; the
 * first matching fault with count left is used.
 */
import type { Fault, RouteName } from './types.js'

interface ActiveFault {
  route: RouteName | '*'
  fault: Fault
  remaining: number
}

export class FaultInjector {
  private readonly faults: ActiveFault[] = []

  inject(route: RouteName | '*', fault: Fault): void {
    this.faults.push({ route, fault, remaining: fault.count })
  }

  clear(): void {
    this.faults.length = 0
  }

  /** The fault this request gets, if any (using up one of its count). */
  take(route: RouteName): Fault | undefined {
    const active = this.faults.find(f => f.remaining > 0 && (f.route === '*' || f.route === route))
    if (!active) return undefined
    active.remaining -= 1
    return active.fault
  }
}
