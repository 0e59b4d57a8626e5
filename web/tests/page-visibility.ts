// Telling a page it is hidden. Headless Chromium never hides a page (a tab opened in front, a minimized window:
// document.visibilityState stays "visible" and animation frames go on), so the page is told the way a browser tells
// it: visibilityState "hidden" and a visibilitychange event. Nothing throttles the page then, which is the stricter
// case for what it still does while hidden.

import type { Page } from "playwright-core";

export function setHidden(page: Page, hidden: boolean): Promise<void> {
  return page.evaluate((h) => {
    if (h) {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
    } else {
      delete (document as unknown as { visibilityState?: string }).visibilityState;
      delete (document as unknown as { hidden?: boolean }).hidden;
    }
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}
