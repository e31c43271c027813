"""A small multilingual test set for comparing language identifiers, written for this benchmark
(not copied from any corpus): per ISO 639-1 code, short texts (a chat-style question or reply of
a few words) and long ones (an answer paragraph). Used by ``bench_filters.py``."""

from __future__ import annotations

SHORT: dict[str, list[str]] = {
    "en": ["How do I reset my password?", "Thanks, that worked perfectly.",
           "What time does the museum open?", "Can you explain this error to me?"],
    "de": ["Wie setze ich mein Passwort zurück?", "Danke, das hat super funktioniert.",
           "Wann öffnet das Museum morgen?", "Kannst du mir diesen Fehler erklären?"],
    "fr": ["Comment réinitialiser mon mot de passe ?", "Merci, ça a parfaitement marché.",
           "À quelle heure ouvre le musée ?", "Peux-tu m'expliquer cette erreur ?"],
    "es": ["¿Cómo restablezco mi contraseña?", "Gracias, eso funcionó perfectamente.",
           "¿A qué hora abre el museo?", "¿Puedes explicarme este error?"],
    "it": ["Come posso reimpostare la mia password?", "Grazie, ha funzionato benissimo.",
           "A che ora apre il museo domani?", "Puoi spiegarmi questo errore?"],
    "pt": ["Como faço para redefinir minha senha?", "Obrigado, funcionou perfeitamente.",
           "A que horas o museu abre amanhã?", "Você pode me explicar esse erro?"],
    "nl": ["Hoe stel ik mijn wachtwoord opnieuw in?", "Bedankt, dat werkte perfect.",
           "Hoe laat gaat het museum open?", "Kun je deze foutmelding uitleggen?"],
    "ru": ["Как сбросить мой пароль?", "Спасибо, всё отлично сработало.",
           "Во сколько открывается музей?", "Можешь объяснить мне эту ошибку?"],
    "pl": ["Jak mogę zresetować swoje hasło?", "Dzięki, zadziałało idealnie.",
           "O której godzinie otwierają muzeum?", "Czy możesz wyjaśnić mi ten błąd?"],
    "tr": ["Şifremi nasıl sıfırlayabilirim?", "Teşekkürler, mükemmel çalıştı.",
           "Müze saat kaçta açılıyor?", "Bu hatayı bana açıklayabilir misin?"],
    "zh": ["我怎么重置我的密码？", "谢谢，这个方法完全有效。", "博物馆几点开门？",
           "你能给我解释一下这个错误吗？"],
    "ja": ["パスワードをリセットするにはどうすればいいですか？", "ありがとう、うまくいきました。",
           "博物館は何時に開きますか？", "このエラーについて説明してもらえますか？"],
    "ko": ["비밀번호를 어떻게 재설정하나요?", "고마워요, 완벽하게 작동했어요.",
           "박물관은 몇 시에 문을 여나요?", "이 오류를 설명해 줄 수 있나요?"],
    "ar": ["كيف يمكنني إعادة تعيين كلمة المرور؟", "شكرا، لقد نجح ذلك تماما.",
           "متى يفتح المتحف غدا؟", "هل يمكنك أن تشرح لي هذا الخطأ؟"],
    "hi": ["मैं अपना पासवर्ड कैसे रीसेट करूं?", "धन्यवाद, यह बिल्कुल सही काम किया।",
           "संग्रहालय कितने बजे खुलता है?", "क्या आप मुझे यह त्रुटि समझा सकते हैं?"],
    "vi": ["Làm thế nào để đặt lại mật khẩu của tôi?", "Cảm ơn, cách đó hoạt động hoàn hảo.",
           "Bảo tàng mở cửa lúc mấy giờ?", "Bạn có thể giải thích lỗi này cho tôi không?"],
}

LONG: dict[str, list[str]] = {
    "en": [
        "To reset your password, open the settings page, choose the security tab and click the "
        "link that says forgot password. You will receive an email within a few minutes; follow "
        "the instructions in it and pick a new password that you have not used before.",
        "Photosynthesis is the process by which green plants use sunlight, water and carbon "
        "dioxide to produce glucose and oxygen. It takes place mainly in the leaves, inside "
        "small structures called chloroplasts, which contain the pigment chlorophyll.",
        "If the program crashes when it starts, the most likely cause is a missing configuration "
        "file. Check that the file exists in the folder you run the program from, and that every "
        "setting it names has a value of the right type.",
    ],
    "de": [
        "Um dein Passwort zurückzusetzen, öffne die Einstellungen, wähle den Reiter Sicherheit "
        "und klicke auf den Link Passwort vergessen. Du bekommst in wenigen Minuten eine E-Mail; "
        "folge den Anweisungen darin und wähle ein neues Passwort, das du noch nie benutzt hast.",
        "Die Photosynthese ist der Vorgang, bei dem grüne Pflanzen mit Hilfe von Sonnenlicht "
        "aus Wasser und Kohlendioxid Traubenzucker und Sauerstoff herstellen. Sie findet vor "
        "allem in den Blättern statt, in kleinen Bestandteilen der Zellen, den Chloroplasten.",
        "Wenn das Programm beim Start abstürzt, fehlt wahrscheinlich die Konfigurationsdatei. "
        "Prüfe, ob die Datei in dem Ordner liegt, aus dem du das Programm startest, und ob "
        "jede Einstellung darin einen Wert des richtigen Typs hat.",
    ],
    "fr": [
        "Pour réinitialiser votre mot de passe, ouvrez la page des paramètres, choisissez "
        "l'onglet sécurité et cliquez sur le lien mot de passe oublié. Vous recevrez un courriel "
        "dans quelques minutes ; suivez les instructions et choisissez un nouveau mot de passe.",
        "La photosynthèse est le processus par lequel les plantes vertes utilisent la lumière du "
        "soleil, l'eau et le dioxyde de carbone pour produire du glucose et de l'oxygène. Elle "
        "a lieu surtout dans les feuilles, à l'intérieur de petites structures, les chloroplastes.",
        "Si le programme plante au démarrage, la cause la plus probable est un fichier de "
        "configuration manquant. Vérifiez que le fichier se trouve dans le dossier depuis lequel "
        "vous lancez le programme et que chaque réglage a une valeur du bon type.",
    ],
    "es": [
        "Para restablecer tu contraseña, abre la página de configuración, elige la pestaña de "
        "seguridad y haz clic en el enlace que dice olvidé mi contraseña. Recibirás un correo en "
        "unos minutos; sigue las instrucciones y elige una contraseña nueva que no hayas usado.",
        "La fotosíntesis es el proceso mediante el cual las plantas verdes usan la luz del sol, "
        "el agua y el dióxido de carbono para producir glucosa y oxígeno. Ocurre sobre todo en "
        "las hojas, dentro de unas pequeñas estructuras llamadas cloroplastos.",
        "Si el programa se cierra al arrancar, la causa más probable es que falte el archivo de "
        "configuración. Comprueba que el archivo está en la carpeta desde la que ejecutas el "
        "programa y que cada opción tiene un valor del tipo correcto.",
    ],
    "it": [
        "Per reimpostare la password, apri la pagina delle impostazioni, scegli la scheda "
        "sicurezza e fai clic sul collegamento password dimenticata. Riceverai un'email entro "
        "pochi minuti; segui le istruzioni e scegli una nuova password che non hai mai usato.",
        "La fotosintesi è il processo con cui le piante verdi usano la luce del sole, l'acqua e "
        "l'anidride carbonica per produrre glucosio e ossigeno. Avviene soprattutto nelle foglie, "
        "all'interno di piccole strutture chiamate cloroplasti.",
        "Se il programma si blocca all'avvio, la causa più probabile è un file di configurazione "
        "mancante. Controlla che il file si trovi nella cartella da cui avvii il programma e che "
        "ogni impostazione abbia un valore del tipo giusto.",
    ],
    "pt": [
        "Para redefinir sua senha, abra a página de configurações, escolha a aba de segurança e "
        "clique no link esqueci minha senha. Você vai receber um e-mail em poucos minutos; siga "
        "as instruções e escolha uma senha nova que você nunca usou antes.",
        "A fotossíntese é o processo pelo qual as plantas verdes usam a luz do sol, a água e o "
        "gás carbônico para produzir glicose e oxigênio. Ela acontece principalmente nas folhas, "
        "dentro de pequenas estruturas chamadas cloroplastos.",
        "Se o programa trava ao iniciar, a causa mais provável é a falta do arquivo de "
        "configuração. Verifique se o arquivo está na pasta de onde você executa o programa e se "
        "cada opção tem um valor do tipo certo.",
    ],
    "nl": [
        "Om je wachtwoord opnieuw in te stellen, open je de instellingen, kies je het tabblad "
        "beveiliging en klik je op de link wachtwoord vergeten. Je krijgt binnen een paar minuten "
        "een e-mail; volg de instructies en kies een nieuw wachtwoord dat je nog niet gebruikte.",
        "Fotosynthese is het proces waarbij groene planten zonlicht, water en koolstofdioxide "
        "gebruiken om glucose en zuurstof te maken. Het gebeurt vooral in de bladeren, in kleine "
        "onderdelen van de cellen die bladgroenkorrels heten.",
        "Als het programma bij het opstarten vastloopt, ontbreekt waarschijnlijk het "
        "configuratiebestand. Controleer of het bestand in de map staat van waaruit je het "
        "programma start en of elke instelling een waarde van het juiste type heeft.",
    ],
    "ru": [
        "Чтобы сбросить пароль, откройте страницу настроек, выберите вкладку безопасности и "
        "нажмите на ссылку «Забыли пароль». Через несколько минут вы получите письмо; следуйте "
        "инструкциям в нём и выберите новый пароль, который вы раньше не использовали.",
        "Фотосинтез — это процесс, при котором зелёные растения используют солнечный свет, воду "
        "и углекислый газ, чтобы производить глюкозу и кислород. Он происходит в основном в "
        "листьях, внутри небольших структур, которые называются хлоропластами.",
        "Если программа падает при запуске, скорее всего, не хватает файла конфигурации. "
        "Проверьте, что файл лежит в той папке, из которой вы запускаете программу, и что у "
        "каждой настройки есть значение правильного типа.",
    ],
    "pl": [
        "Aby zresetować hasło, otwórz stronę ustawień, wybierz kartę bezpieczeństwo i kliknij "
        "link nie pamiętam hasła. W ciągu kilku minut dostaniesz wiadomość e-mail; postępuj "
        "zgodnie z instrukcjami i wybierz nowe hasło, którego wcześniej nie używałeś.",
        "Fotosynteza to proces, w którym zielone rośliny wykorzystują światło słoneczne, wodę i "
        "dwutlenek węgla do wytwarzania glukozy i tlenu. Zachodzi głównie w liściach, wewnątrz "
        "małych struktur zwanych chloroplastami.",
        "Jeśli program zawiesza się przy uruchamianiu, najbardziej prawdopodobną przyczyną jest "
        "brak pliku konfiguracyjnego. Sprawdź, czy plik znajduje się w folderze, z którego "
        "uruchamiasz program, i czy każde ustawienie ma wartość właściwego typu.",
    ],
    "tr": [
        "Şifrenizi sıfırlamak için ayarlar sayfasını açın, güvenlik sekmesini seçin ve şifremi "
        "unuttum bağlantısına tıklayın. Birkaç dakika içinde bir e-posta alacaksınız; içindeki "
        "talimatları izleyin ve daha önce kullanmadığınız yeni bir şifre seçin.",
        "Fotosentez, yeşil bitkilerin güneş ışığını, suyu ve karbondioksiti kullanarak glikoz ve "
        "oksijen ürettiği süreçtir. Çoğunlukla yapraklarda, kloroplast adı verilen küçük "
        "yapıların içinde gerçekleşir.",
        "Program açılışta çöküyorsa, en olası neden eksik bir yapılandırma dosyasıdır. Dosyanın "
        "programı çalıştırdığınız klasörde bulunduğunu ve her ayarın doğru türde bir değere "
        "sahip olduğunu kontrol edin.",
    ],
    "zh": [
        "要重置密码，请打开设置页面，选择安全选项卡，然后点击忘记密码链接。几分钟内你会收到一封电子"
        "邮件；按照邮件中的说明操作，并选择一个以前没有用过的新密码。",
        "光合作用是绿色植物利用阳光、水和二氧化碳制造葡萄糖和氧气的过程。它主要发生在叶子里，在一种"
        "叫做叶绿体的微小结构内部进行，叶绿体中含有叶绿素。",
        "如果程序在启动时崩溃，最可能的原因是缺少配置文件。请检查该文件是否位于你运行程序的文件夹中，"
        "以及其中的每一项设置是否都有正确类型的值。",
    ],
    "ja": [
        "パスワードをリセットするには、設定ページを開き、セキュリティのタブを選んで、パスワードを忘れた"
        "場合のリンクをクリックしてください。数分以内にメールが届くので、その指示に従って、これまでに"
        "使ったことのない新しいパスワードを選んでください。",
        "光合成とは、緑色の植物が太陽の光と水と二酸化炭素を使って、ブドウ糖と酸素を作り出す仕組みのこと"
        "です。主に葉の中にある葉緑体という小さな構造の中で行われます。",
        "プログラムが起動時に止まってしまう場合、最も考えられる原因は設定ファイルがないことです。"
        "プログラムを実行しているフォルダーにファイルがあるか、そして各設定に正しい型の値が入っているかを"
        "確認してください。",
    ],
    "ko": [
        "비밀번호를 재설정하려면 설정 페이지를 열고 보안 탭을 선택한 다음 비밀번호 찾기 링크를 "
        "클릭하세요. 몇 분 안에 이메일을 받게 되며, 그 안의 안내에 따라 이전에 사용하지 않은 새 "
        "비밀번호를 선택하면 됩니다.",
        "광합성은 녹색 식물이 햇빛과 물과 이산화탄소를 이용해 포도당과 산소를 만드는 과정입니다. "
        "주로 잎에서 일어나며, 엽록체라고 불리는 작은 구조 안에서 진행됩니다.",
        "프로그램이 시작할 때 멈춘다면 가장 가능성 높은 원인은 설정 파일이 없는 것입니다. 프로그램을 "
        "실행하는 폴더에 파일이 있는지, 그리고 각 설정에 올바른 형식의 값이 있는지 확인하세요.",
    ],
    "ar": [
        "لإعادة تعيين كلمة المرور، افتح صفحة الإعدادات واختر علامة التبويب الأمان ثم انقر على رابط "
        "نسيت كلمة المرور. ستصلك رسالة بريد إلكتروني خلال دقائق قليلة، فاتبع التعليمات واختر كلمة "
        "مرور جديدة لم تستخدمها من قبل.",
        "التمثيل الضوئي هو العملية التي تستخدم فيها النباتات الخضراء ضوء الشمس والماء وثاني أكسيد "
        "الكربون لإنتاج الجلوكوز والأكسجين. ويحدث معظمه في الأوراق داخل تراكيب صغيرة تسمى "
        "البلاستيدات الخضراء.",
        "إذا توقف البرنامج عند بدء التشغيل، فالسبب الأرجح هو غياب ملف الإعدادات. تأكد من أن الملف "
        "موجود في المجلد الذي تشغل منه البرنامج، وأن لكل إعداد قيمة من النوع الصحيح.",
    ],
    "hi": [
        "अपना पासवर्ड रीसेट करने के लिए सेटिंग पेज खोलें, सुरक्षा टैब चुनें और पासवर्ड भूल गए वाले "
        "लिंक पर क्लिक करें। कुछ ही मिनटों में आपको एक ईमेल मिलेगा; उसमें दिए गए निर्देशों का पालन "
        "करें और ऐसा नया पासवर्ड चुनें जिसे आपने पहले कभी इस्तेमाल नहीं किया हो।",
        "प्रकाश संश्लेषण वह प्रक्रिया है जिसमें हरे पौधे सूरज की रोशनी, पानी और कार्बन डाइऑक्साइड का "
        "उपयोग करके ग्लूकोज और ऑक्सीजन बनाते हैं। यह मुख्य रूप से पत्तियों में होता है।",
        "अगर प्रोग्राम शुरू होते ही बंद हो जाता है, तो सबसे संभावित कारण यह है कि कॉन्फ़िगरेशन फ़ाइल "
        "मौजूद नहीं है। जांच लें कि फ़ाइल उसी फ़ोल्डर में है जहां से आप प्रोग्राम चलाते हैं।",
    ],
    "vi": [
        "Để đặt lại mật khẩu, hãy mở trang cài đặt, chọn thẻ bảo mật và nhấp vào liên kết quên "
        "mật khẩu. Bạn sẽ nhận được một email trong vài phút; hãy làm theo hướng dẫn trong đó và "
        "chọn một mật khẩu mới mà bạn chưa từng dùng.",
        "Quang hợp là quá trình cây xanh sử dụng ánh sáng mặt trời, nước và khí cacbonic để tạo "
        "ra glucose và oxy. Quá trình này diễn ra chủ yếu ở lá, bên trong những cấu trúc nhỏ "
        "gọi là lục lạp.",
        "Nếu chương trình bị dừng ngay khi khởi động, nguyên nhân có khả năng nhất là thiếu tệp "
        "cấu hình. Hãy kiểm tra xem tệp có nằm trong thư mục mà bạn chạy chương trình hay không "
        "và mỗi thiết lập có giá trị đúng kiểu hay không.",
    ],
}
