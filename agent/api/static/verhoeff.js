// Verhoeff check digits: a port of sync/wire/verhoeff.py (tests compare the two on many numbers).
// The page checks a typed token before any lookup; node's require() can load this file too.
(function (root) {
  "use strict";
  var D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
  ];
  var P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]
  ];
  var INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];
  var DIGITS = /^[0-9]+$/;
  var PROVISIONAL = /^P(?:K[0-9]{1,20}|D[0-9A-F]{8})-[1-9][0-9]{0,15}$/;

  function checksum(digits, offset) {
    var c = 0;
    for (var i = 0; i < digits.length; i++) {
      c = D[c][P[(i + offset) % 8][digits.charCodeAt(digits.length - 1 - i) - 48]];
    }
    return c;
  }

  function isValid(number) {
    return typeof number === "string" && number.length >= 2 && DIGITS.test(number) && checksum(number, 0) === 0;
  }

  function checkDigit(digits) {
    if (!DIGITS.test(digits)) { throw new Error("digits only"); }
    return String(INV[checksum(digits, 1)]);
  }

  // "ok": a well-formed token; "typo": 11 digits whose check digit is wrong; "short": not yet one.
  function tokenState(text) {
    var t = String(text || "").trim().toUpperCase();
    if (t.charAt(0) === "P") { return PROVISIONAL.test(t) ? "ok" : "short"; }
    if (!DIGITS.test(t) || t.length !== 11) { return t.length > 11 && DIGITS.test(t) ? "typo" : "short"; }
    return isValid(t) ? "ok" : "typo";
  }

  var api = { isValid: isValid, checkDigit: checkDigit, tokenState: tokenState };
  if (typeof module !== "undefined" && module.exports) { module.exports = api; } else { root.KioskVerhoeff = api; }
})(this);
