// Test entry: re-exports the softfloat module plus flag accessors.
export * from "../../assembly/softfloat";
import { fflags } from "../../assembly/softfloat";
export function getFlags(): u32 { return fflags; }
