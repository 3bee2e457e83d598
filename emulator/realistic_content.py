"""What the calls of the ``real`` profile say: products, events and their properties, pages,
traits. How each SDK shapes a call around that content is emulator/realistic.py.

All draws come from one ``random.Random`` (the generator's), through :func:`choice` and
:func:`rint`, which cost a fraction of ``random.choice`` / ``random.randrange``.
"""

from __future__ import annotations

import random
import re
import unicodedata
from math import log
from typing import Any

from . import vocab as V

Person = dict[str, Any]

_HEX = "0123456789abcdef"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_GCLID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_-"


def choice(rnd: Any, seq: Any) -> Any:
    """An element of ``seq`` (``rnd`` is a generator's ``random`` method)."""
    return seq[int(rnd() * len(seq))]


def rint(rnd: Any, a: int, b: int | None = None) -> int:
    """An integer in ``[a, b)``, or in ``[0, a)`` without ``b``."""
    if b is None:
        return int(rnd() * a)
    return a + int(rnd() * (b - a))


def cumulative(weights: list[int]) -> tuple[list[int], int]:
    out, acc = [], 0
    for w in weights:
        acc += w
        out.append(acc)
    return out, acc


def pick(cum: list[int], total: int, x: float) -> int:
    """The index of the weight that ``x`` in [0, 1) falls on (``cum`` from :func:`cumulative`)."""
    v = x * total
    for i, c in enumerate(cum):
        if v < c:
            return i
    return len(cum) - 1


def uuid4(r: random.Random, upper: bool = False) -> str:
    """A version-4 UUID drawn from ``r`` (upper case as Apple's ``UUID().uuidString``)."""
    h = f"{r.getrandbits(128):032x}"
    u = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_HEX[8 | int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"
    return u.upper() if upper else u


def _fold_table() -> dict[int, str]:
    table = {}
    for cp in range(0xC0, 0x250):
        base = unicodedata.normalize("NFKD", chr(cp)).encode("ascii", "ignore").decode()
        if base:
            table[cp] = base
    extra = {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "đ": "d", "ł": "l", "Ł": "L", "ı": "i", "œ": "oe"}
    table.update({ord(k): v for k, v in extra.items()})
    return table


_FOLD = _fold_table()


def ascii_fold(text: str) -> str:
    """Latin letters without their accents ("Zoë" -> "Zoe"); other scripts are left as they are."""
    return text.translate(_FOLD)


# ------------------------------------------------------------------------------------------------
# Events: (name, kind of properties, weight) per platform. Names follow the Segment e-commerce,
# mobile lifecycle, video and B2B SaaS specs; a few are in other languages, as some workspaces
# name their events.

_SHOP = [("Product Viewed", "product", 12), ("Product Added", "product", 8), ("Product List Viewed", "list", 5),
         ("Products Searched", "search", 4), ("Cart Viewed", "cart", 3), ("Checkout Started", "order", 4),
         ("Order Completed", "order", 5)]
EVENTS: dict[str, list[tuple[str, str, int]]] = {
    "web": [*_SHOP,
            ("Product Clicked", "product", 5), ("Product Removed", "product", 2), ("Coupon Applied", "coupon", 1),
            ("Checkout Step Viewed", "step", 3), ("Checkout Step Completed", "step", 3),
            ("Payment Info Entered", "step", 2), ("Promotion Viewed", "promo", 4), ("Promotion Clicked", "promo", 1),
            ("Signed Up", "signup", 2), ("Signed In", "signin", 3), ("Signed Out", "none", 1),
            ("Button Clicked", "button", 8), ("Form Submitted", "form", 3), ("Video Playback Started", "video", 2),
            ("Video Content Playing", "video", 3), ("Product Added to Wishlist", "product", 1),
            ("Produkt zum Wunschzettel hinzugefügt", "product", 1), ("注文完了", "order", 1),
            ("🎉 Reward Claimed", "custom", 1), ("Ajouté au panier", "product", 1)],
    "mobile": [*_SHOP,
               ("Application Opened", "app_opened", 10), ("Application Backgrounded", "none", 8),
               ("Application Installed", "app_installed", 1), ("Application Updated", "app_installed", 1),
               ("Push Notification Received", "push", 3), ("Push Notification Tapped", "push", 2),
               ("Deep Link Opened", "deeplink", 2), ("Feature Used", "feature", 6), ("Order Updated", "order", 1),
               ("Ürün Sepete Eklendi", "product", 1), ("商品をカートに追加", "product", 1)],
    "server": [("Order Completed", "order", 12), ("Order Updated", "order", 3), ("Order Refunded", "order", 2),
               ("Order Cancelled", "order", 1), ("Subscription Started", "subscription", 5),
               ("Subscription Renewed", "subscription", 6), ("Trial Started", "subscription", 3),
               ("Trial Ended", "subscription", 2), ("Invoice Paid", "invoice", 8), ("Payment Failed", "invoice", 2),
               ("Rechnung bezahlt", "invoice", 1), ("Email Sent", "email", 10), ("Email Delivered", "email", 8),
               ("Email Opened", "email", 6), ("Email Link Clicked", "email", 3), ("Account Created", "account", 4),
               ("User Invited", "invite", 3), ("Report Exported", "report", 2), ("Webhook Received", "webhook", 4),
               ("API Call Made", "api", 6)],
}
#: Events whose properties carry a ``products`` array (1 to 20 items).
PRODUCTS_KINDS = frozenset({"order", "cart", "list"})


class Content:
    """Draws the content of calls from ``rng``; the product catalog comes from ``seed``."""

    def __init__(self, rng: random.Random, seed: int, catalog_size: int = 4000) -> None:
        self.rng = rng
        self.catalog = self._build_catalog(random.Random(f"{seed}:catalog"), catalog_size)
        self._events = {}
        for platform, table in EVENTS.items():
            cum, total = cumulative([w for _, _, w in table])
            self._events[platform] = ([(e, k) for e, k, _ in table], cum, total)

    # -------------------------------------------------------------------------------- products

    @staticmethod
    def _build_catalog(r: random.Random, n: int) -> list[dict[str, Any]]:
        rnd = r.random
        out = []
        for i in range(n):
            lang, adjs, nouns = choice(rnd, V.PRODUCT_WORDS)
            brand, adj, noun = choice(rnd, V.BRANDS), choice(rnd, adjs), choice(rnd, nouns)
            if lang in ("fr", "es"):
                title = f"{noun} {adj}"
            elif lang in ("ja", "zh", "ko"):
                title = f"{adj}{noun}"
            else:
                title = f"{adj} {noun}"
            name = f"{brand} {title}"
            pid = f"{r.getrandbits(96):024x}" if rnd() < 0.5 else str(1_000_000 + i * 17)
            base = choice(rnd, (4.99, 9.99, 14.5, 19.99, 24.0, 39.95, 49.99, 89.0, 129.99, 249.0, 3.0))
            slug = _NOT_SLUG.sub("-", ascii_fold(name).lower()).strip("-") or "p"
            out.append({
                "product_id": pid, "sku": f"{brand[:3].upper()}-{rint(rnd, 1000, 9999)}-{choice(rnd, V.SIZES)}",
                "category": choice(rnd, V.CATEGORIES), "name": name, "brand": brand,
                "variant": choice(rnd, V.COLORS) if rnd() < 0.7 else None,
                "price": round(base * (1 + rint(rnd, 0, 30) / 10), 2),
                "url": f"https://shop.example.com/products/{slug}-{i}",
                "image_url": f"https://cdn.example.com/img/{r.getrandbits(64):016x}.jpg",
            })
        return out

    def product(self) -> dict[str, Any]:
        """A catalog product; popular ones more often."""
        return self.catalog[int(len(self.catalog) * self.rng.random() ** 1.6)]

    def n_items(self) -> int:
        """Items in a ``products`` array: 1 to 20, mostly a few (mean about 3.4)."""
        return min(20, 1 + int(-log(1.0 - self.rng.random()) * 2.6))

    def item(self, position: int, currency: str) -> dict[str, Any]:
        rnd = self.rng.random
        item = dict(self.product())
        item["quantity"] = 1 + int(rnd() ** 3 * 4)
        item["position"] = position
        if rnd() < 0.1:
            item["coupon"] = choice(rnd, V.COUPONS)
        item["currency"] = currency
        return item

    # -------------------------------------------------------------------------------- track

    def event(self, platform: str) -> tuple[str, str]:
        """(event name, kind of properties) for a track call from ``platform``."""
        names, cum, total = self._events[platform]
        return names[pick(cum, total, self.rng.random())]

    def properties(self, kind: str, event: str, person: Person, platform: str) -> dict[str, Any]:
        """The properties of a track call."""
        rnd = self.rng.random
        cur = person["currency"] if rnd() < 0.8 else "USD"
        if kind in PRODUCTS_KINDS:
            return self._products_event(kind, event, cur, platform)
        if kind == "product":
            return self.item(1, cur)
        maker = getattr(self, f"_p_{kind}", None)
        return maker(event, person, cur) if maker is not None else {}

    def _products_event(self, kind: str, event: str, cur: str, platform: str) -> dict[str, Any]:
        rng = self.rng
        rnd = rng.random
        items = [self.item(i + 1, cur) for i in range(self.n_items())]
        if kind == "list":
            category = choice(rnd, V.CATEGORIES)
            return {"list_id": f"{category.lower().replace('/', '-')}-{rint(rnd, 100)}", "category": category,
                    "products": items}
        subtotal = round(sum(it["price"] * it["quantity"] for it in items), 2)
        if kind == "cart":
            return {"cart_id": uuid4(rng), "value": subtotal, "currency": cur, "products": items}
        tax = round(subtotal * choice(rnd, (0.0, 0.07, 0.19, 0.2, 0.1)), 2)
        shipping = choice(rnd, (0.0, 0.0, 4.99, 5.9, 9.0))
        discount = 0.0 if rnd() < 0.7 else round(subtotal * 0.1, 2)
        props = {"checkout_id": uuid4(rng), "order_id": str(rint(rnd, 10**9, 10**10)),
                 "affiliation": choice(rnd, V.AFFILIATIONS), "total": round(subtotal + tax + shipping - discount, 2),
                 "subtotal": subtotal, "revenue": round(subtotal - discount, 2), "shipping": shipping, "tax": tax,
                 "discount": discount, "coupon": choice(rnd, V.COUPONS) if discount else None, "currency": cur,
                 "products": items}
        if platform == "server" or rnd() < 0.3:
            props["payment_method"] = choice(rnd, V.PAYMENT_METHODS)
            props["shipping_method"] = choice(rnd, V.SHIPPING_METHODS)
        if event == "Order Refunded":
            props["reason"] = choice(rnd, ("damaged", "wrong size", "Artikel gefällt nicht", "no longer needed"))
        return props

    def _p_search(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"query": choice(rnd, V.SEARCH_TERMS).replace("+", " "), "results": rint(rnd, 0, 240)}

    def _p_step(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"checkout_id": uuid4(self.rng), "step": rint(rnd, 1, 5),
                "shipping_method": choice(rnd, V.SHIPPING_METHODS), "payment_method": choice(rnd, V.PAYMENT_METHODS)}

    def _p_coupon(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"order_id": str(rint(rnd, 10**9, 10**10)), "cart_id": uuid4(self.rng),
                "coupon_id": f"c_{self.rng.getrandbits(32):08x}", "coupon_name": choice(rnd, V.COUPONS),
                "discount": choice(rnd, (5, 10, 15.5))}

    def _p_promo(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"promotion_id": f"promo_{rint(rnd, 1, 300)}", "creative": choice(rnd, ("hero", "banner", "popup")),
                "name": choice(rnd, ("Winter Sale ❄️", "Soldes d'hiver", "Sommerschlussverkauf", "新春セール")),
                "position": choice(rnd, ("home_top", "sidebar", "checkout"))}

    def _p_signup(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"type": choice(rnd, ("organic", "invite", "paid")), "method": choice(rnd, ("email", "google", "apple")),
                "plan": person["plan"]}

    def _p_signin(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"method": choice(rnd, ("password", "google", "sso", "magic_link")), "remember_me": rnd() < 0.5}

    def _p_button(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        label = choice(rnd, ("Add to cart", "Jetzt kaufen", "En savoir plus", "今すぐ購入", "Subscribe",
                             "Learn more →"))
        return {"button_id": f"btn-{rint(rnd, 1, 80)}", "label": label,
                "location": choice(rnd, ("header", "hero", "footer", "pdp", "modal"))}

    def _p_form(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"form_id": f"form_{rint(rnd, 1, 30)}", "form_name": choice(rnd, ("newsletter", "contact", "demo")),
                "fields": rint(rnd, 1, 12), "success": rnd() < 0.9}

    def _p_video(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"session_id": uuid4(self.rng), "content_asset_id": str(rint(rnd, 10**6, 10**7)),
                "position": rint(rnd, 0, 3600), "total_length": rint(rnd, 60, 7200),
                "bitrate": choice(rnd, (800, 2500, 5000)), "framerate": choice(rnd, (24.0, 29.97, 60.0)),
                "video_player": choice(rnd, ("youtube", "vimeo", "html5")), "sound": rint(rnd, 0, 101),
                "full_screen": rnd() < 0.3, "ad_enabled": rnd() < 0.5, "quality": choice(rnd, ("hd720", "hd1080")),
                "livestream": False, "title": choice(rnd, ("Making of: Zoë's Jacket", "Wie wir nähen", "職人の技"))}

    def _p_app_opened(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        props = {"from_background": rnd() < 0.6, "version": choice(rnd, V.APP_VERSIONS),
                 "build": str(rint(rnd, 5000, 5200))}
        if rnd() < 0.1:
            props.update(referring_application="com.google.android.gm", url=f"example://product/{rint(rnd, 10**5)}")
        return props

    def _p_app_installed(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"version": choice(rnd, V.APP_VERSIONS), "build": str(rint(rnd, 5000, 5200)),
                "previous_version": choice(rnd, V.APP_VERSIONS)}

    def _p_push(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"campaign_id": f"cmp_{self.rng.getrandbits(40):010x}",
                "campaign_name": choice(rnd, ("Back in stock 🔔", "Dein Warenkorb wartet", "Flash sale ⚡")),
                "message_id": uuid4(self.rng), "action": choice(rnd, ("open", "dismiss", None))}

    def _p_deeplink(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"url": f"example://collections/{rint(rnd, 1, 500)}?utm_source=push&utm_campaign=c{rint(rnd, 99)}",
                "referring_application": choice(rnd, ("com.instagram.android", "com.apple.mobilesafari"))}

    def _p_feature(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"feature": choice(rnd, ("dark_mode", "ar_preview", "size_finder", "wishlist_share", "voice_search")),
                "value": choice(rnd, (True, False, 1, 2.5, "on")), "duration_ms": rint(rnd, 50, 90_000),
                "experiment": {"id": f"exp_{rint(rnd, 1, 40)}", "variant": choice(rnd, ("control", "b", "c"))}}

    def _p_subscription(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"subscription_id": f"sub_{self.rng.getrandbits(64):016x}", "plan": person["plan"],
                "billing_cycle": choice(rnd, ("monthly", "annual")), "amount": choice(rnd, (9.0, 29.0, 99.0, 990.0)),
                "currency": cur, "trial": rnd() < 0.2, "seats": rint(rnd, 1, 250)}

    def _p_invoice(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        descriptions = ("Pro plan – monthly", "Zusätzliche Plätze", "Overage: 1,2 Mio. Ereignisse", "サポート")
        lines = [{"sku": f"PLAN-{rint(rnd, 1, 9)}", "description": choice(rnd, descriptions),
                  "amount": round(rnd() * 500, 2), "quantity": rint(rnd, 1, 20)} for _ in range(rint(rnd, 1, 5))]
        return {"invoice_id": f"in_{self.rng.getrandbits(96):024x}",
                "amount": round(sum(li["amount"] for li in lines), 2), "currency": cur,
                "status": "failed" if event == "Payment Failed" else "paid", "line_items": lines,
                "attempt": rint(rnd, 1, 4)}

    def _p_email(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        subject = choice(rnd, ("Your order has shipped 📦", "Ihre Bestellung ist unterwegs", "Last chance: 20% off",
                               "Votre commande est en route", "ご注文の商品を発送しました", "Добро пожаловать!"))
        return {"email_id": uuid4(self.rng), "email_subject": subject,
                "campaign_id": f"cmp_{self.rng.getrandbits(40):010x}", "template": f"tmpl_{rint(rnd, 1, 60)}",
                "provider": choice(rnd, ("sendgrid", "braze", "customer.io"))}

    def _p_account(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        return {"account_id": person["org"], "account_name": V.COMPANY_NAMES[person["company"]],
                "plan": person["plan"]}

    def _p_invite(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"invitee_email": f"colleague{rint(rnd, 10**5)}@{choice(rnd, V.EMAIL_DOMAINS)}",
                "invitee_role": choice(rnd, ("admin", "member", "viewer")), "account_id": person["org"]}

    def _p_report(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"report_id": f"rpt_{self.rng.getrandbits(40):010x}", "format": choice(rnd, ("csv", "xlsx", "pdf")),
                "rows": rint(rnd, 1, 10**6),
                "filters": {"date_range": "last_30_days", "segments": [f"seg_{rint(rnd, 50)}"]}}

    def _p_webhook(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"endpoint": f"https://hooks.example.com/{self.rng.getrandbits(48):012x}",
                "status_code": choice(rnd, (200, 200, 200, 202, 400, 500, 503)), "attempt": rint(rnd, 1, 6),
                "latency_ms": rint(rnd, 20, 9000)}

    def _p_api(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"endpoint": choice(rnd, ("/v2/orders", "/v2/customers/{id}", "/v1/search", "/v2/reports")),
                "method": choice(rnd, ("GET", "GET", "POST", "PATCH", "DELETE")),
                "status": choice(rnd, (200, 200, 201, 204, 404, 429)), "latency_ms": rint(rnd, 3, 2500),
                "bytes": rint(rnd, 100, 10**6)}

    def _p_custom(self, event: str, person: Person, cur: str) -> dict[str, Any]:
        rnd = self.rng.random
        return {"reward": choice(rnd, ("Gutschein 5 €", "🎁 Free shipping", "ポイント2倍")),
                "points": rint(rnd, 10, 5000)}

    # -------------------------------------------------------------------------------- screens

    def screen(self) -> tuple[str, dict[str, Any]]:
        """(name, properties) of a screen call."""
        rnd = self.rng.random
        name = choice(rnd, ("Home", "Product Detail", "Cart", "Checkout", "Search", "Profile", "Settings",
                            "Onboarding – Step 2", "Bestellübersicht", "商品詳細", "Wishlist ❤️"))
        if name == "Product Detail":
            p = self.product()
            return name, {"product_id": p["product_id"], "name": p["name"], "price": p["price"]}
        if rnd() < 0.4:
            return name, {"from_screen": choice(rnd, ("Home", "Search", "Cart")), "tab": rint(rnd, 0, 5)}
        return name, {}

    # -------------------------------------------------------------------------------- pages

    def page(self) -> tuple[dict[str, Any], dict[str, str] | None]:
        """(``context.page`` of a browser call, its campaign from the URL's utm_ parameters or None)."""
        rng = self.rng
        rnd = rng.random
        site = V.SITES[int(len(V.SITES) * rnd() ** 2)]
        x = rnd()
        query = ""
        if x < 0.45:
            p = self.product()
            path, title = p["url"].split("example.com", 1)[1], f"{p['name']} | Example Shop"
        elif x < 0.7:
            path, title = V.STATIC_PAGES[int(len(V.STATIC_PAGES) * rnd() ** 1.5)]
        elif x < 0.8:
            path, title, query = "/search", "Search results", f"q={choice(rnd, V.SEARCH_TERMS)}"
        elif x < 0.9:
            post = choice(rnd, ("spring-lookbook", "behind-the-seams", "nachhaltigkeit-2025", "guide-des-tailles"))
            path, title = f"/blog/2025/{rint(rnd, 1, 13):02d}/{post}", "Blog – Example"
        else:
            path, title = f"/account/orders/{rint(rnd, 10**9, 10**10)}", "Order details"
        campaign = None
        params = [query] if query else []
        if rnd() < 0.22:
            utm = choice(rnd, V.UTM)
            params += [f"utm_{'campaign' if k == 'name' else k}={v.replace(' ', '%20')}" for k, v in utm.items()]
            if rnd() < 0.5:
                params.append("gclid=" + "".join(choice(rnd, _GCLID_CHARS) for _ in range(30)))
            campaign = dict(utm)
        elif rnd() < 0.08:
            params.append(f"fbclid=IwAR{rng.getrandbits(120):030x}")
        search = "?" + "&".join(params) if params else ""
        if rnd() < 0.4:
            ref = ""
        elif rnd() < 0.6:
            ref = choice(rnd, V.REFERRER_SITES)
        else:
            ref = f"{site}{choice(rnd, V.STATIC_PAGES)[0]}"
        page = {"path": path, "referrer": ref, "search": search, "title": title, "url": f"{site}{path}{search}"}
        return page, campaign

    # -------------------------------------------------------------------------------- traits

    def user_traits(self, person: Person, full: bool) -> dict[str, Any]:
        """identify traits: the basics, or (``full``, as back ends send them) the whole profile."""
        rnd = self.rng.random
        t: dict[str, Any] = {"email": person["email"], "firstName": person["first"], "lastName": person["last"],
                             "name": person["name"]}
        c = person["company"]
        if full or rnd() < 0.5:
            t.update(createdAt=person["created"], plan=person["plan"], phone=person["phone"],
                     address={"street": person["street"], "city": person["city"], "state": person["region"],
                              "postalCode": person["postal"], "country": person["country"]},
                     company={"id": person["org"], "name": V.COMPANY_NAMES[c],
                              "industry": V.INDUSTRIES[c % len(V.INDUSTRIES)], "employee_count": 10 + c * 37},
                     title=person["title"], avatar=person["avatar"])
        if full or rnd() < 0.3:
            t.update(logins=person["logins"], tags=person["tags"], marketing_opt_in=person["optin"],
                     preferred_language=person["locale"],
                     description=None if rnd() < 0.5 else "Loves hiking ⛰️, coffee ☕ and 日本語 lessons")
        return t

    @staticmethod
    def group_traits(person: Person) -> dict[str, Any]:
        c = person["company"]
        return {"name": V.COMPANY_NAMES[c], "industry": V.INDUSTRIES[c % len(V.INDUSTRIES)],
                "employees": 10 + c * 37, "plan": person["plan"], "website": f"https://www.{c}.example.org",
                "createdAt": person["created"], "mrr": round(99 + c * 123.45, 2),
                "address": {"city": person["city"], "country": person["country"]},
                "tags": ["b2b", person["country"].lower()]}
