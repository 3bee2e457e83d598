"""Word lists for the "real" call profile (emulator/realistic.py): people, places, products,
pages, devices and user agents in the shapes and scripts real Segment sources carry.

Everything here is fictional or generic (no real customer data); brands are made up.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------------
# People and places, per locale: (locale, timezones, first names, last names, cities, country,
# phone prefix, currency). Locales are weighted by the share of users they get.

LOCALES: list[tuple[str, int, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...], str,
                    str, str]] = [
    ("en-US", 30, ("America/New_York", "America/Chicago", "America/Los_Angeles", "America/Denver"),
     ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "Aaliyah", "Mateo",
      "Chloé", "Zoë", "Siobhan", "DeShawn"),
     ("Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "O'Brien", "Nguyen", "Rodríguez",
      "Kowalski", "Washington", "Lee"),
     (("New York", "NY"), ("San Francisco", "CA"), ("Austin", "TX"), ("Chicago", "IL"), ("Seattle", "WA"),
      ("Boston", "MA")), "US", "+1", "USD"),
    ("en-GB", 7, ("Europe/London",),
     ("Oliver", "Amelia", "Harry", "Isla", "Siân", "Niamh", "Rhys", "Eilidh"),
     ("Taylor", "Davies", "Evans", "Wilson", "MacDonald", "Ó Súilleabháin", "Patel", "Khan"),
     (("London", "ENG"), ("Manchester", "ENG"), ("Edinburgh", "SCT"), ("Cardiff", "WLS")), "GB", "+44", "GBP"),
    ("de-DE", 12, ("Europe/Berlin",),
     ("Jürgen", "Lukas", "Sophie", "Maximilian", "Größe", "Jörg", "Anneliese", "Björn", "Mia", "Lea"),
     ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Schäfer", "Köhler", "Groß", "Bäcker"),
     (("München", "BY"), ("Köln", "NW"), ("Berlin", "BE"), ("Düsseldorf", "NW"), ("Nürnberg", "BY")),
     "DE", "+49", "EUR"),
    ("fr-FR", 8, ("Europe/Paris",),
     ("François", "Hélène", "Anaïs", "Jérôme", "Loïc", "Maëlle", "Noël", "Céline"),
     ("Lefèvre", "Dupont", "Moreau", "Bézier", "Girard", "Lemaître", "Rousseau", "Château"),
     (("Paris", "IDF"), ("Lyon", "ARA"), ("Marseille", "PAC"), ("Besançon", "BFC")), "FR", "+33", "EUR"),
    ("es-ES", 5, ("Europe/Madrid", "Atlantic/Canary"),
     ("José", "María", "Begoña", "Íñigo", "Lucía", "Ramón", "Nuria"),
     ("García", "Fernández", "Martínez", "Peña", "Ibáñez", "Muñoz", "Núñez"),
     (("Madrid", "MD"), ("Barcelona", "CT"), ("Sevilla", "AN"), ("A Coruña", "GA")), "ES", "+34", "EUR"),
    ("pt-BR", 6, ("America/Sao_Paulo", "America/Manaus"),
     ("João", "Ana", "Luíza", "Gonçalo", "Conceição", "Thiago", "Letícia"),
     ("Silva", "Santos", "Conceição", "Araújo", "Gonçalves", "Magalhães", "Simões"),
     (("São Paulo", "SP"), ("Rio de Janeiro", "RJ"), ("Belo Horizonte", "MG"), ("Goiânia", "GO")),
     "BR", "+55", "BRL"),
    ("pl-PL", 3, ("Europe/Warsaw",),
     ("Łukasz", "Małgorzata", "Wojciech", "Zofia", "Paweł", "Agnieszka"),
     ("Wójcik", "Kowalczyk", "Woźniak", "Dąbrowski", "Zieliński", "Szymańska"),
     (("Kraków", "MA"), ("Łódź", "LD"), ("Wrocław", "DS"), ("Gdańsk", "PM")), "PL", "+48", "PLN"),
    ("sv-SE", 3, ("Europe/Stockholm",),
     ("Åsa", "Björn", "Märta", "Sören", "Linnéa", "Örjan"),
     ("Öberg", "Åkesson", "Lindström", "Sjögren", "Ekström", "Håkansson"),
     (("Malmö", "M"), ("Göteborg", "O"), ("Stockholm", "AB"), ("Umeå", "AC")), "SE", "+46", "SEK"),
    ("tr-TR", 2, ("Europe/Istanbul",),
     ("Çağla", "Şükrü", "Gülşen", "İbrahim", "Ömer", "Büşra"),
     ("Öztürk", "Yılmaz", "Çelik", "Şahin", "Doğan", "Aydın"),
     (("İstanbul", "34"), ("Ankara", "06"), ("İzmir", "35")), "TR", "+90", "TRY"),
    ("vi-VN", 2, ("Asia/Ho_Chi_Minh",),
     ("Hương", "Minh", "Thảo", "Dũng", "Phương"),
     ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng"),
     (("Hà Nội", "HN"), ("Thành phố Hồ Chí Minh", "SG"), ("Đà Nẵng", "DN")), "VN", "+84", "VND"),
    ("ja-JP", 7, ("Asia/Tokyo",),
     ("健", "美咲", "翔太", "さくら", "陽菜", "大輔", "ゆい"),
     ("佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "山本"),
     (("東京", "13"), ("大阪", "27"), ("横浜", "14"), ("札幌", "01"), ("福岡", "40")), "JP", "+81", "JPY"),
    ("zh-CN", 4, ("Asia/Shanghai",),
     ("伟", "芳", "娜", "秀英", "敏", "静", "磊"),
     ("王", "李", "张", "刘", "陈", "杨", "黄"),
     (("上海", "SH"), ("北京", "BJ"), ("深圳", "GD"), ("杭州", "ZJ")), "CN", "+86", "CNY"),
    ("ko-KR", 3, ("Asia/Seoul",),
     ("민준", "서연", "지우", "하은", "도윤"),
     ("김", "이", "박", "최", "정"),
     (("서울", "11"), ("부산", "26"), ("인천", "28")), "KR", "+82", "KRW"),
    ("ru-RU", 3, ("Europe/Moscow", "Asia/Yekaterinburg"),
     ("Иван", "Ольга", "Дмитрий", "Наталья", "Алексей", "Екатерина"),
     ("Петров", "Смирнова", "Иванов", "Кузнецова", "Соколов", "Попова"),
     (("Москва", "MOW"), ("Санкт-Петербург", "SPE"), ("Новосибирск", "NVS")), "RU", "+7", "RUB"),
    ("el-GR", 1, ("Europe/Athens",),
     ("Γιώργος", "Μαρία", "Νίκος", "Ελένη"),
     ("Παπαδόπουλος", "Οικονόμου", "Γεωργίου", "Νικολάου"),
     (("Αθήνα", "I"), ("Θεσσαλονίκη", "B")), "GR", "+30", "EUR"),
    ("ar-SA", 2, ("Asia/Riyadh",),
     ("محمد", "فاطمة", "عبدالله", "نورة", "خالد"),
     ("العلي", "القحطاني", "الحربي", "الزهراني"),
     (("الرياض", "01"), ("جدة", "02"), ("الدمام", "04")), "SA", "+966", "SAR"),
    ("he-IL", 1, ("Asia/Jerusalem",),
     ("נועה", "איתי", "תמר", "יונתן"),
     ("כהן", "לוי", "מזרחי", "פרץ"),
     (("תל אביב", "TA"), ("ירושלים", "JM"), ("חיפה", "HA")), "IL", "+972", "ILS"),
    ("hi-IN", 3, ("Asia/Kolkata",),
     ("अर्जुन", "प्रिया", "Rahul", "Ananya", "Vikram", "स्नेहा"),
     ("शर्मा", "Patel", "Iyer", "गुप्ता", "Reddy", "Singh"),
     (("Bengaluru", "KA"), ("मुंबई", "MH"), ("नई दिल्ली", "DL"), ("Chennai", "TN")), "IN", "+91", "INR"),
    ("th-TH", 1, ("Asia/Bangkok",),
     ("สมชาย", "สุดา", "อนันต์", "มาลี"),
     ("ใจดี", "ศรีสุข", "วงศ์ใหญ่", "แก้วมณี"),
     (("กรุงเทพมหานคร", "10"), ("เชียงใหม่", "50")), "TH", "+66", "THB"),
]

STREETS = ("Main St", "Hauptstraße", "Rue de la Paix", "Calle Mayor", "Rua Augusta", "Storgatan",
           "ul. Długa", "銀座通り", "Nevsky Prospekt", "Baker Street", "Königsallee", "Avenida Paulista")
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "web.de", "gmx.de", "orange.fr",
                 "qq.com", "yandex.ru", "naver.com", "example.com", "proton.me", "hotmail.co.uk")
# Latin transliterations for e-mail local parts of names in other scripts.
EMAIL_NAMES = ("user", "info", "kontakt", "tanaka", "wang", "kim", "ivanov", "maria", "jose", "anna",
               "ahmed", "noa", "arjun", "somchai")

COMPANY_NAMES = ("Acme GmbH", "Initech", "Globex Corporation", "Ñandú Labs", "株式会社サンプル",
                 "Société Générale de Widgets", "Björk & Sons AB", "Umbrella Ltd.", "Hooli", "Öko-Logistik AG",
                 "北京示例科技有限公司", "Stark & Wayne LLP", "Pied Piper", "Café Zoë", "Ελληνικά Προϊόντα ΑΕ",
                 "ООО «Пример»", "شركة المثال", "Vandelay Industries", "Dunder Mifflin", "Tyrell Corp")
INDUSTRIES = ("Software", "Retail", "Financial Services", "Healthcare", "Manufacturing", "Education",
              "Media & Entertainment", "Logistics", "Non-profit", "Real Estate")
PLANS = ("free", "starter", "pro", "business", "enterprise", "trial")
JOB_TITLES = ("Software Engineer", "Head of Growth", "CEO", "Marketing Manager", "Data Analyst",
              "Produktmanagerin", "Directeur commercial", "エンジニア", "Designer", "CTO")

# ------------------------------------------------------------------------------------------------
# Products: a catalog is built from these per seed (emulator/realistic.py).

BRANDS = ("Nordwände", "Maison Lumière", "Kōbō", "Ærø Design", "Alpenglück", "Sakura Works", "Tierra Viva",
          "Polar Fox", "Urban Nomad", "Kiwi & Co", "Hélio", "Žaluzije", "Acme", "Blue Finch")
CATEGORIES = ("Apparel/Outerwear", "Apparel/T-Shirts", "Shoes/Running", "Home/Kitchen", "Home/Décor",
              "Electronics/Audio", "Electronics/Accessories", "Beauty/Skincare", "Outdoor/Camping",
              "Toys & Games", "Books", "Grocery/Coffee", "Sports/Cycling", "Garden")
# (language, adjectives, nouns): product names are "<brand> <adjective> <noun>" (or the script's
# natural order), so a catalog has titles in several scripts.
PRODUCT_WORDS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("en", ("Organic", "Waterproof", "Ultralight", "Classic", "Vintage", "Wireless", "Ergonomic", "Recycled",
            "Heavy-Duty", "Limited Edition"),
     ("Cotton T-Shirt", "Hiking Jacket", "Running Shoes", "Coffee Grinder", "Desk Lamp", "Earbuds",
      "Backpack", "Water Bottle", "Yoga Mat", "Phone Case", "Throw Blanket", "Chef's Knife")),
    ("de", ("Wasserdichte", "Gefütterte", "Leichte", "Robuste", "Nachhaltige", "Große", "Klassische"),
     ("Wanderjacke", "Kaffeemühle", "Schreibtischlampe", "Trinkflasche", "Rucksack", "Überkabel 2m",
      "Fußmatte", "Bettwäsche")),
    ("fr", ("en cuir", "écologique", "léger", "imperméable", "élégant", "fait main"),
     ("Sac à dos", "Théière", "Écharpe", "Veste", "Bougie parfumée", "Carnet", "Crème hydratante")),
    ("es", ("de algodón", "ecológico", "plegable", "térmico", "artesanal"),
     ("Camiseta", "Mochila", "Termo", "Cafetera", "Zapatillas", "Sombrero")),
    ("ja", ("ワイヤレス", "防水", "軽量", "オーガニック", "限定版", "抗菌"),
     ("イヤホン", "ジャケット", "マグカップ", "リュック", "タオル", "炊飯器", "スニーカー")),
    ("zh", ("不锈钢", "无线", "便携式", "有机", "智能", "复古"),
     ("保温杯", "充电器", "蓝牙音箱", "背包", "茶具", "台灯")),
    ("ko", ("무선", "방수", "초경량", "유기농", "프리미엄"),
     ("충전기", "이어폰", "백팩", "텀블러", "운동화")),
    ("ru", ("Кожаный", "Водонепроницаемый", "Лёгкий", "Шерстяной", "Классический"),
     ("рюкзак", "чайник", "плед", "шарф", "кошелёк")),
    ("ar", ("ذكية", "فاخرة", "جلدية", "رياضية"),
     ("ساعة", "حقيبة", "سماعات", "محفظة")),
    ("el", ("Δερμάτινη", "Κλασική", "Ελαφριά"),
     ("τσάντα", "κούπα", "κουβέρτα")),
    ("emoji", ("🎁", "🔥", "✨", "🌿", "🚀"),
     ("Gift Card", "Bundle", "Mystery Box", "Starter Kit", "Sample Pack")),
]
COLORS = ("black", "white", "navy", "olive", "rot", "bleu", "grün", "赤", "ivory", "sand", "charcoal")
SIZES = ("XS", "S", "M", "L", "XL", "XXL", "38", "40", "42", "44", "One Size")
COUPONS = ("WELCOME10", "SPRING-Ü10", "FREESHIP", "BLACKFRIDAY", "VIP-2026", "RÉDUC15", "夏セール")
SHIPPING_METHODS = ("standard", "express", "next_day", "pickup", "DHL Paket", "Colissimo", "ヤマト運輸")
PAYMENT_METHODS = ("credit_card", "paypal", "apple_pay", "google_pay", "klarna", "sofort", "ideal", "pix",
                   "konbini", "alipay")
AFFILIATIONS = ("Online Store", "App Store", "Marketplace", "Boutique Paris", "Google Shopping")

# ------------------------------------------------------------------------------------------------
# Pages and referrers.

SITES = ("https://www.example.com", "https://shop.example.com", "https://www.example.de", "https://example.co.jp",
         "https://app.example.io", "https://blog.example.com", "https://www.example.fr")
STATIC_PAGES: list[tuple[str, str]] = [
    ("/", "Home – Example"), ("/pricing", "Pricing | Example"), ("/about", "About us"),
    ("/careers", "Careers – we're hiring!"), ("/contact", "Contact"), ("/login", "Sign in"),
    ("/signup", "Create your account"), ("/cart", "Your cart"), ("/checkout", "Checkout"),
    ("/checkout/payment", "Checkout – Payment"), ("/checkout/confirmation", "Thank you for your order!"),
    ("/docs/getting-started", "Getting started · Docs"), ("/docs/api/v2/events", "Events API · Docs"),
    ("/account/settings", "Settings"), ("/account/orders", "Your orders"), ("/help/returns", "Returns & refunds"),
    ("/de/ueber-uns", "Über uns"), ("/fr/a-propos", "À propos"),
    ("/ja/%E4%BC%9A%E7%A4%BE%E6%A6%82%E8%A6%81", "会社概要"),
    ("/blog/zo%C3%AB-%C3%B1and%C3%BA-story", "Zoë's story"), ("/es/contacto", "Contáctenos"),
]
SEARCH_TERMS = ("rain jacket", "gr%C3%BCne+jacke", "wireless earbuds", "%E3%82%A4%E3%83%A4%E3%83%9B%E3%83%B3",
                "gift ideas", "coffee", "size guide", "r%C3%A9duction", "returns",
                "%D1%80%D1%8E%D0%BA%D0%B7%D0%B0%D0%BA")
UTM = [
    {"source": "google", "medium": "cpc", "name": "brand_search_2026", "term": "example shop"},
    {"source": "facebook", "medium": "paid_social", "name": "retargeting-q1", "content": "carousel_v3"},
    {"source": "newsletter", "medium": "email", "name": "weekly-digest-2026-01-01"},
    {"source": "instagram", "medium": "social", "name": "influencer_zoë"},
    {"source": "bing", "medium": "cpc", "name": "generic_de", "term": "wanderjacke wasserdicht"},
    {"source": "tiktok", "medium": "paid_social", "name": "🎄holiday_push"},
    {"source": "partner", "medium": "referral", "name": "Émission spéciale", "content": "banner-728x90"},
]
REFERRER_SITES = ("https://www.google.com/", "https://www.google.de/", "https://www.bing.com/",
                  "https://duckduckgo.com/", "https://www.facebook.com/", "https://l.instagram.com/",
                  "https://news.ycombinator.com/", "https://www.reddit.com/r/BuyItForLife/",
                  "https://search.yahoo.co.jp/", "https://yandex.ru/", "android-app://com.google.android.gm/")

# ------------------------------------------------------------------------------------------------
# Browsers. A user agent is built from a template and a version, so there are hundreds of
# distinct strings, as in real traffic. (template, weight, chromium brand or None, platform, mobile)

CHROME_VERSIONS = tuple(range(118, 132))
FIREFOX_VERSIONS = tuple(range(115, 134))
SAFARI_VERSIONS = ("16.6", "17.0", "17.1", "17.2.1", "17.3", "17.4.1", "17.5", "17.6", "18.0", "18.1", "18.2")
IOS_VERSIONS = ("16_7_10", "17_1_2", "17_4_1", "17_5_1", "17_6_1", "18_0", "18_1_1", "18_2")
ANDROID_VERSIONS = ("10", "11", "12", "13", "14", "15")
ANDROID_DEVICES: list[tuple[str, str, str, str, int, int, float]] = [
    # manufacturer, model, device name, build id, width, height, density
    ("Google", "Pixel 8", "shiba", "AP2A.240905.003", 1080, 2205, 2.625),
    ("Google", "Pixel 7a", "lynx", "AP1A.240505.004", 1080, 2180, 2.625),
    ("samsung", "SM-S918B", "dm3q", "UP1A.231005.007", 1080, 2115, 2.8125),
    ("samsung", "SM-A546B", "a54x", "UP1A.231005.007", 1080, 2125, 2.625),
    ("samsung", "SM-X710", "gts9wifi", "UP1A.231005.007", 1600, 2464, 2.0),
    ("Xiaomi", "2201117TG", "spes", "TKQ1.221114.001", 1080, 2180, 2.75),
    ("OnePlus", "CPH2449", "OP594DL1", "TP1A.220905.001", 1240, 2514, 3.0),
    ("motorola", "moto g54 5G", "cancunf", "U1TDS34.94-12-7", 1080, 2246, 2.5),
    ("HUAWEI", "ELS-NX9", "HWELS", "HUAWEIELS-N29", 1200, 2640, 3.0),
    ("OPPO", "CPH2591", "OP5D2BL1", "TP1A.220905.001", 1080, 2256, 2.625),
]
IOS_DEVICES: list[tuple[str, str, int, int]] = [
    # model, name, width, height (points)
    ("iPhone15,2", "iPhone", 393, 852), ("iPhone15,3", "iPhone", 430, 932), ("iPhone16,1", "iPhone", 393, 852),
    ("iPhone16,2", "iPhone", 430, 932), ("iPhone14,7", "iPhone", 390, 844), ("iPhone14,5", "iPhone", 390, 844),
    ("iPhone13,2", "iPhone", 390, 844), ("iPhone12,8", "iPhone", 375, 667), ("iPad13,18", "iPad", 820, 1180),
    ("iPad14,3", "iPad", 834, 1194), ("iPhone17,1", "iPhone", 402, 874),
]
CARRIERS = ("T-Mobile", "Verizon", "AT&T", "Vodafone.de", "Telekom.de", "Orange F", "docomo", "SoftBank",
            "中国移动", "SK Telecom", "Movistar", "Vivo", "MTS RUS", "Jio 4G", "")
APP_VERSIONS = ("5.12.3", "5.12.2", "5.11.0", "5.10.4", "5.9.1", "5.8.0", "4.22.7", "5.13.0-beta.2")
