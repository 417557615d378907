#!/usr/bin/env bash
# Regenerates the demo prompts: espeak-ng speaks, sox converts to 8 kHz mono 16-bit PCM.
# sox -D (no dither) keeps the output identical from run to run.
set -euo pipefail
cd "$(dirname "$0")"
say() {
  local name=$1 text=$2 tmp
  tmp=$(mktemp --suffix=.wav)
  espeak-ng -v en-us -s 165 -w "$tmp" "$text"
  sox -D "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav"
  rm -f "$tmp"
}
say welcome "Welcome to Acme support. You can press zero at any time to speak to a person."
say main_menu "For sales, press 1. For billing, press 2. For our opening hours, press 3. To speak to a person, press 0, or stay on the line."
say invalid "Sorry, that is not an option."
say hours "We are open Monday to Thursday from nine to six, and Friday from nine to five, Madrid time."
say anything_else "To go back to the main menu, press 1. To end the call, press 9. Or stay on the line for a person."
say outage "We are aware of a power cut in some areas and are working to restore supply. We will keep you informed. Stay on the line if you still need us."
say returning_taken "Welcome back. Someone is already working on your request."
say returning_new "Welcome back. We have your request, and we will get to it very soon."
say returning_menu "To speak to the person handling it, press 1. If you no longer need it, press 2."
say withdrawn "Thank you. We have closed your request. Goodbye."
say after_hours "We are closed right now. To leave a message, press 1. To have us call you back, press 2."
say leave_message "Please leave your message after the tone, and we will call you back."
say callback_confirm "Thank you. We will call you back as soon as a person is free."
say goodbye "Thank you for calling Acme. Goodbye."
say enter_account "Please type your account number, then press the hash key. Press zero to speak to a person."
# Queue announcements: phrases, and the numbers they are built from (prompts/digits/).
mkdir -p queue digits
say queue/you_are_number "You are number"
say queue/in_line "in line."
say queue/wait_about "Your expected wait is about"
say queue/minute "minute."
say queue/minutes "minutes."
say queue/less_than_a_minute "less than a minute."
say queue/callback_offer "To keep your place in line and have us call you back, press 1."
say queue/callback_kept "Thank you. You keep your place in line, and we will call you back when it is your turn. Goodbye."
for n in $(seq 0 19) 20 30 40 50 60 70 80 90; do
  say "digits/$n" "$n"
done
say digits/hundred "hundred"
say digits/thousand "thousand"
# What an agent hears after dialling the ready toggle code (*45).
mkdir -p agent
say agent/available "You are now available for calls."
say agent/not_ready "You are now not ready. No calls will ring."
# What a caller hears when a voicemail is kept, or when a voicemail or callback could not be
# saved (a full disk): they are never told "saved" before it is.
mkdir -p followup
say followup/saved "Your message is saved. We will call you back. Goodbye."
say followup/not_saved "Sorry, we could not keep your request. Please stay on the line for the next available person."
say followup/call_later "Sorry, we could not keep your request. Please call again later. Goodbye."
# Spanish (prompts/es/): the queue announcements, the numbers they are built from as Spanish
# says them (engine/spanish.rs names each file), and the follow-up confirmations.
say_es() {
  local name=$1 text=$2 tmp
  tmp=$(mktemp --suffix=.wav)
  espeak-ng -v es -s 160 -w "$tmp" "$text"
  sox -D "$tmp" -r 8000 -c 1 -b 16 -e signed-integer "es/$name.wav"
  rm -f "$tmp"
}
mkdir -p es/queue es/digits es/followup
say_es queue/you_are_number "Es usted el número"
say_es queue/in_line "en la fila."
say_es queue/wait_about "Su tiempo de espera aproximado es de"
say_es queue/minute "minuto."
say_es queue/minutes "minutos."
say_es queue/less_than_a_minute "menos de un minuto."
say_es queue/callback_offer "Para conservar su lugar en la fila y que le devolvamos la llamada, pulse uno."
say_es queue/callback_kept "Gracias. Conserva su lugar en la fila, y le llamaremos cuando sea su turno. Adiós."
say_es followup/saved "Su mensaje se ha guardado. Le devolveremos la llamada. Adiós."
say_es followup/not_saved "Lo sentimos, no hemos podido guardar su solicitud. Por favor, permanezca en línea para hablar con la próxima persona disponible."
say_es followup/call_later "Lo sentimos, no hemos podido guardar su solicitud. Por favor, vuelva a llamar más tarde. Adiós."
while read -r name word; do
  say_es "digits/$name" "$word"
done <<'WORDS'
0 cero
1 uno
2 dos
3 tres
4 cuatro
5 cinco
6 seis
7 siete
8 ocho
9 nueve
10 diez
11 once
12 doce
13 trece
14 catorce
15 quince
16 dieciséis
17 diecisiete
18 dieciocho
19 diecinueve
20 veinte
21 veintiuno
21un veintiún
22 veintidós
23 veintitrés
24 veinticuatro
25 veinticinco
26 veintiséis
27 veintisiete
28 veintiocho
29 veintinueve
30 treinta
40 cuarenta
50 cincuenta
60 sesenta
70 setenta
80 ochenta
90 noventa
y y
100 cien
ciento ciento
200 doscientos
300 trescientos
400 cuatrocientos
500 quinientos
600 seiscientos
700 setecientos
800 ochocientos
900 novecientos
mil mil
un un
WORDS
# Ringback an agent hears while a callback dials the caller: 425 Hz, 1 s on, 4 s off.
sox -D -n -r 8000 -c 1 -b 16 -e signed-integer queue/ringback.wav \
  synth 1 sine 425 gain -12 pad 0 4
# Hold music: a gentle repeating chord, 8 seconds.
sox -D -n -r 8000 -c 1 -b 16 -e signed-integer hold.wav \
  synth 2 sine 392 sine 494 sine 587 remix - fade 0.2 2 0.2 gain -12 repeat 3
