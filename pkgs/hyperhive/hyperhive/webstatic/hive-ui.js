// @ts-check
// hyperhive: the page furniture the dashboard and every agent's page share (served as
// /static/common/hive-ui.js, after hive-auth.js and before the page's own files): element
// lookup, toasts, the live-stream badge, the "logged out" banner, a list that sticks to the
// bottom with a "↓ N new" pill, and opt-in browser notifications.
"use strict";

/**
 * The first element under `root` that matches `sel`. The pages only look up their own
 * markup, so it is there; a caller that needs a narrower type casts the result.
 * @param {string} sel
 * @param {ParentNode} [root]
 * @returns {HTMLElement}
 */
const $ = (sel, root = document) => /** @type {HTMLElement} */ (root.querySelector(sel));

/**
 * Every element under `root` that matches `sel`, as an array.
 * @param {string} sel
 * @param {ParentNode} [root]
 * @returns {HTMLElement[]}
 */
const $$ = (sel, root = document) => /** @type {HTMLElement[]} */ ([...root.querySelectorAll(sel)]);

const hiveUI = (() => {
  /**
   * A short message in the corner: 4 s, or 8 s for an error.
   * @param {string} text
   * @param {boolean} [err]
   */
  function toast(text, err = false) {
    const t = document.createElement("div");
    t.className = err ? "toast err" : "toast";
    t.textContent = text;
    $("#toasts").append(t);
    setTimeout(() => t.remove(), err ? 8000 : 4000);
  }

  /**
   * The header's stream badge (#conn): "● live" when `live`, else a "○ …" state.
   * @param {string} text
   * @param {boolean} live
   */
  function conn(text, live) {
    const c = $("#conn");
    c.textContent = text;
    c.className = live ? "conn live" : "conn down";
  }

  // No key, or one a rotation made old: show the page's #login-needed banner (it says where
  // the key comes from) and stop asking.
  hiveAuth.onUnauthorized(() => {
    $("#login-needed").hidden = false;
    conn("○ logged out", false);
  });

  /**
   * Whether `box` is scrolled to (within 30 px of) its bottom.
   * @param {Element} box
   */
  const atBottom = (box) => box.scrollHeight - box.scrollTop - box.clientHeight < 30;

  /**
   * A scrolling list that follows new items while the reader is at its bottom; scrolled up,
   * the view stays and `pill` (a button holding a <span>) counts what came in. Reaching the
   * bottom again, or clicking the pill, clears the count.
   * @param {HTMLElement} box
   * @param {HTMLElement} pill
   */
  function sticky(box, pill) {
    let unseen = 0;
    const count = $("span", pill);
    const seen = () => {
      unseen = 0;
      pill.hidden = true;
    };
    function toBottom() {
      box.scrollTop = box.scrollHeight;
      seen();
    }
    box.addEventListener("scroll", () => { if (atBottom(box)) seen(); });
    pill.addEventListener("click", toBottom);
    return {
      /** Whether the view is at the bottom now (read it before adding items). */
      atBottom: () => atBottom(box),
      toBottom,
      /**
       * `added` items came in; `stuck` is whether the view was at the bottom before them.
       * @param {boolean} stuck
       * @param {number} added
       */
      settle(stuck, added) {
        if (stuck) { toBottom(); return; }
        if (!added) return;
        unseen += added;
        pill.hidden = false;
        count.textContent = String(unseen);
      },
    };
  }

  /**
   * Opt-in browser notifications: `button` toggles them (remembered in localStorage under
   * `storeKey`, asking the browser's permission the first time); the returned function shows
   * one only while they are on and allowed.
   * @param {string} storeKey
   * @param {HTMLElement} button
   * @returns {(title: string, options: NotificationOptions) => void}
   */
  function notifications(storeKey, button) {
    const on = () => localStorage.getItem(storeKey) === "on";
    const show = () => { button.textContent = on() ? "◆ notify on" : "◇ notify"; };
    button.addEventListener("click", async () => {
      if (on()) localStorage.setItem(storeKey, "off");
      else if (!("Notification" in window)) toast("this browser has no notifications", true);
      else if ((await Notification.requestPermission()) === "granted") localStorage.setItem(storeKey, "on");
      else toast("notifications were not allowed", true);
      show();
    });
    show();
    return (title, options) => {
      if (!on() || !("Notification" in window) || Notification.permission !== "granted") return;
      new Notification(title, options);
    };
  }

  return { toast, conn, atBottom, sticky, notifications };
})();
