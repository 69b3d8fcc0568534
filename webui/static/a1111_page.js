// The page helpers A1111 extensions' javascript/*.js call (A1111 v1.10.1 defines them in its
// script.js and ui.js): gradioApp(), onUiLoaded/onUiUpdate/onAfterUiUpdate/onUiTabChange/
// onOptionsChanged, get_uiCurrentTab(Content), uiElementIsVisible, updateInput, and `opts` (the
// settings, extensions' own included, as the page was built); and textboxes shaped as Gradio 3's
// (`label > textarea`). Loaded before any extension script.
(function () {
  "use strict";
  const callbacks = { loaded: [], update: [], afterUpdate: [], tabChange: [], optionsChanged: [] };
  let loaded = false;
  let currentTab = null;
  let afterUpdateTimer = null;

  window.gradioApp = function () {
    const apps = document.getElementsByTagName("gradio-app");
    const app = apps.length ? apps[0] : document;
    const root = app.shadowRoot || app;
    if (!root.getElementById) root.getElementById = (id) => document.getElementById(id);  // A1111 does the same
    return root;
  };
  function run(list, argument) {
    for (const callback of list) {
      try { callback(argument); } catch (error) { console.error("error running an extension callback:", error); }
    }
  }
  window.executeCallbacks = run;
  window.onUiLoaded = (callback) => callbacks.loaded.push(callback);
  window.onUiUpdate = (callback) => callbacks.update.push(callback);
  window.onAfterUiUpdate = (callback) => callbacks.afterUpdate.push(callback);
  window.onUiTabChange = (callback) => callbacks.tabChange.push(callback);
  window.onOptionsChanged = (callback) => callbacks.optionsChanged.push(callback);

  window.get_uiCurrentTab = function () {
    return gradioApp().querySelector(".tab-nav button.selected, [role=tablist] button[aria-selected=true]");
  };
  window.get_uiCurrentTabContent = function () {
    const panels = gradioApp().querySelectorAll("[role=tabpanel], .tabitem");
    for (const panel of panels) {
      if (panel.offsetParent !== null && panel.id && panel.id.startsWith("tab_")) return panel;
    }
    for (const panel of panels) if (panel.offsetParent !== null) return panel;
    return null;
  };
  window.uiElementIsVisible = function (element) {
    if (element === document) return true;
    const style = window.getComputedStyle(element);
    if (style.display === "none" || style.visibility === "hidden") return false;
    return element.parentElement ? uiElementIsVisible(element.parentElement) : true;
  };
  window.uiElementInSight = function (element) {
    const rect = element.getBoundingClientRect();
    return rect.top < window.innerHeight && rect.bottom > 0;
  };
  window.opts = window.opts || {};

  // Gradio puts the page head (these helpers, then the extensions' scripts) into the document after
  // DOMContentLoaded has fired, where A1111's head scripts run before it; a listener for it added
  // now would never be called (aspect-ratio-helper starts from one). Such a late listener is
  // called when the page is built, before onUiLoaded: A1111 extensions watch for the first of a
  // tab's controls to appear and then expect the whole tab (Gradio 3 builds it at once; Gradio 6
  // adds controls as their code arrives), which holds from then on.
  const lateContentLoaded = [];
  if (document.readyState !== "loading") {
    const addListener = document.addEventListener.bind(document);
    document.addEventListener = function (type, listener, options) {
      if (type === "DOMContentLoaded" && listener && !loaded) {
        lateContentLoaded.push(typeof listener === "function" ? listener : (event) => listener.handleEvent(event));
        return;
      }
      return addListener(type, listener, options);
    };
  }
  function runLateContentLoaded() {
    if (!lateContentLoaded.length) return;
    run(lateContentLoaded.map((listener) => () => listener.call(document, new Event("DOMContentLoaded"))));
    // their observers expect the page's nodes to arrive after this event: announce them with one change
    const mark = document.createElement("div");
    mark.id = "sd-page-built";
    mark.hidden = true;
    const root = gradioApp();
    (root === document ? document.body : root).appendChild(mark);
  }

  // A1111's hints.js: `titles` maps a control's text to its tooltip; extensions add their own
  // (dynamic-prompts: `titles = {...titles, ...}`). Shown as the `title` of matching buttons and labels.
  window.titles = window.titles || {};
  function addTooltips(root) {
    if (!root.querySelectorAll) return;
    for (const element of root.querySelectorAll("button, label > span, h2, option, .gradio-accordion .label-wrap > span")) {
      const tip = window.titles[element.textContent.trim()];
      if (tip && !element.title) element.title = tip;
    }
  }

  // A1111's aspectRatioOverlay.js: controls that set the size call dimensionChange(event, isWidth,
  // isHeight) so A1111 can draw the target shape over the img2img image; that overlay is not drawn
  // here, so the call only has to exist.
  window.dimensionChange = window.dimensionChange || function () {};

  // A1111's script.js: tell Gradio a textbox's value was changed by script (a bubbling "input" event,
  // without inputType, which extensions such as tagcomplete use to tell it from typing).
  window.updateInput = function (target) {
    const event = new Event("input", { bubbles: true });
    Object.defineProperty(event, "target", { value: target });
    target.dispatchEvent(event);
  };

  // Gradio 3 (A1111) renders a textbox as `label > textarea`; Gradio 6 puts the textarea in a
  // `div.input-container` inside the label, so extensions' selectors such as
  // `#txt2img_prompt > label > textarea` (tagcomplete) find nothing. Move the field up to be the
  // label's child where it is the container's only element (no copy/submit button beside it).
  // The field keeps its Svelte listeners and binding; Svelte removes it by reference, not position.
  function liftTextboxFields() {
    const fields = gradioApp().querySelectorAll(
      ".gradio-textbox label > div.input-container > textarea, .gradio-textbox label > div.input-container > input");
    for (const field of fields) {
      const container = field.parentElement;
      if (container.childElementCount !== 1) continue;
      container.parentElement.insertBefore(field, container);
      container.classList.add("sd-lifted");
    }
  }

  // A1111 fires onUiLoaded once the txt2img prompt exists, when Gradio 3 has built the whole page.
  // Gradio 6 builds it piece by piece, so also wait for the page's load event to have answered
  // (body[data-sd-ready], set by webui/tabs/page_load.py): by then the shown tab is built.
  function pageIsBuilt() {
    return document.body !== null && document.body.dataset.sdReady !== undefined
      && gradioApp().querySelector("#txt2img_prompt textarea") !== null;
  }

  // Gradio 6 builds a tab's controls only when the tab is first opened; in A1111 every tab's
  // controls are in the page at onUiLoaded, and extensions bind to them then, once (tagcomplete to
  // #img2img_prompt). So open each tab holding a prompt once, return to the tab that was showing
  // (unless the user picked another meanwhile), and only then call onUiLoaded.
  const PROMPT_TABS = ["img2img"];
  const TAB_BUILD_WAIT_MS = 10000;  // a tab whose prompt never appears is left unbuilt
  let visit = null;
  function noteUserTabChoice(event) {
    if (event.isTrusted && event.target.closest && event.target.closest("[role=tab]")) visit.userChose = true;
  }
  function isSelected(button) { return button.getAttribute("aria-selected") === "true"; }
  function promptTabsBuilt() {
    if (visit === null) {
      visit = { pending: PROMPT_TABS.slice(), back: get_uiCurrentTab(), userChose: false, since: Date.now() };
      document.addEventListener("click", noteUserTabChoice, true);
    }
    while (visit.pending.length) {
      const name = visit.pending[0];
      const button = gradioApp().querySelector(`#tab_${name}-button`);
      const built = gradioApp().querySelector(`#${name}_prompt textarea`) !== null;
      if (!button || built || visit.userChose || Date.now() - visit.since > TAB_BUILD_WAIT_MS) {
        visit.pending.shift();
        visit.since = Date.now();
        continue;
      }
      if (!isSelected(button)) button.click();
      return false;
    }
    if (!visit.userChose && visit.back && !isSelected(visit.back)) {
      visit.back.click();
      return false;
    }
    document.removeEventListener("click", noteUserTabChoice, true);
    return true;
  }
  let recheck = null;
  function checkLoaded() {
    if (loaded || !pageIsBuilt()) return;
    liftTextboxFields();
    if (!promptTabsBuilt()) {
      // a tab switch need not change the nodes the observer watches: look again shortly
      if (recheck === null) recheck = setTimeout(() => { recheck = null; checkLoaded(); }, 50);
      return;
    }
    loaded = true;
    addTooltips(gradioApp());
    runLateContentLoaded();
    run(callbacks.loaded);
  }
  const observer = new MutationObserver(function (mutations) {
    liftTextboxFields();
    checkLoaded();
    if (!loaded) return;
    for (const mutation of mutations) for (const node of mutation.addedNodes) addTooltips(node);
    run(callbacks.update, mutations);
    clearTimeout(afterUpdateTimer);
    afterUpdateTimer = setTimeout(() => run(callbacks.afterUpdate), 200);
    const tab = get_uiCurrentTab();
    if (tab !== currentTab) {
      currentTab = tab;
      run(callbacks.tabChange);
    }
  });
  // Gradio may add the page head after DOMContentLoaded: observe now when the document is ready.
  function start() {
    observer.observe(document.documentElement,
      { childList: true, subtree: true, attributes: true, attributeFilter: ["data-sd-ready"] });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
