/** The moves module's public face: what other modules and the composition root may use. */
export { type DatabaseServerView, type MoveResult, MoveService, type MoveServiceDeps } from './service.js';
export { MOVE_STEP_DESCRIPTIONS, MOVE_STEP_NAMES, type MoveStepName } from './step-names.js';
