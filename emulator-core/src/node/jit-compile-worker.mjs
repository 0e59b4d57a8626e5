// Starts the JIT's compiler thread (jit-compile-worker.ts) under tsx's loader, which a worker does not inherit.
import { register } from "tsx/esm/api";

register();
await import("./jit-compile-worker.ts");
