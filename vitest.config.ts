import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["emulator-core/tests/**/*.test.ts", "cli/**/*.test.ts", "web/**/*.test.ts", "guest/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
