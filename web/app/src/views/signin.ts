// Signing in. On a development stack the web server signs a token for any name (as
// `ticketdrop login` does); elsewhere a fan pastes the token their identity provider
// gave them.

import { h, replace } from "../dom";
import { refusal } from "../errors";
import { web } from "../api";
import { session } from "../session";
import type { GetSiteResponse } from "../gen/ticketdrop/v1/web_pb";

export function renderAccount(element: HTMLElement, site: GetSiteResponse): void {
  const current = session.current();
  if (current) {
    replace(
      element,
      h("span", { class: "who" }, `Signed in as ${current.userId}${current.admin ? " (operator)" : ""}`),
      h("button", { type: "button", class: "link", onclick: () => session.set(undefined) }, "Sign out"),
    );
  } else {
    replace(element, signInForm(site, false));
  }
}

/** A form that signs a fan (or, with `admin`, an operator) in. */
export function signInForm(site: GetSiteResponse, admin: boolean): HTMLFormElement {
  const id = admin ? "operator-name" : "fan-name";
  const status = h("span", { class: "error", role: "alert" });
  const name = h("input", {
    id,
    name: "user",
    autocomplete: "username",
    required: true,
    maxlength: 64,
    pattern: "[A-Za-z0-9._:\\-]+",
    placeholder: admin ? "ops" : "your name",
  });
  const form = h(
    "form",
    { class: "signin", "aria-label": admin ? "Sign in as an operator" : "Sign in" },
    h("label", { for: id }, admin ? "Operator" : "Name"),
    name,
    h("button", { type: "submit" }, admin ? "Sign in as operator" : "Sign in"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!site.devLogin) {
      const token = prompt("Paste your access token");
      if (token) session.set({ userId: name.value, token: token.trim(), admin });
      return;
    }
    try {
      const answer = await web.devLogin({ userId: name.value.trim(), admin });
      session.set({ userId: answer.userId, token: answer.token, admin: answer.admin });
    } catch (error) {
      status.textContent = refusal(error).message;
    }
  });
  return form;
}

/** The sign-in form in the main region, for a view that needs a fan. */
export function needsSignIn(site: GetSiteResponse, what: string): HTMLElement {
  return h("section", { class: "card" }, h("p", {}, `Sign in to ${what}.`), signInForm(site, false));
}
